"""Prometheus metrics, on a registry per process (no module globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from referral_sync.store import Store


class Metrics:
    """The counters and gauges /metrics exposes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.registry = CollectorRegistry()
        self.referrals = Counter(
            "referral_sync_referrals_submitted", "Referral submissions by outcome",
            ["outcome"], registry=self.registry)
        self.events_received = Counter(
            "referral_sync_events_received", "CRM events received", ["provider"],
            registry=self.registry)
        self.events_deduplicated = Counter(
            "referral_sync_events_deduplicated", "CRM events already in the inbox",
            ["provider"], registry=self.registry)
        self.request_seconds = Histogram(
            "referral_sync_request_seconds", "HTTP handling time", ["endpoint"],
            registry=self.registry)
        self.jobs = Gauge("referral_sync_jobs", "Inbox jobs by state", ["state"],
                          registry=self.registry)

    def render(self) -> bytes:
        """The text exposition, with job gauges refreshed from the store."""
        for state, count in self.store.inbox.counts().items():
            if state != "events":
                self.jobs.labels(state=state).set(count)
        return generate_latest(self.registry)
