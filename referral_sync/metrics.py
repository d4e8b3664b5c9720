"""Prometheus metrics, on a registry per process (no module globals), and ``MeteredCrm``, the
CRM port wrapper that counts calls and errors by kind."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from referral_sync.crm import (
    AppliedChanges,
    CrmPort,
    CrmRecordRef,
    CrmTask,
    DuplicateCandidate,
    IntakeLookup,
    IntakeSnapshot,
    Owner,
    ReferralSnapshot,
    ReferrerContext,
    SchemaChange,
)
from referral_sync.errors import CrmPermanentError, CrmRetryableError
from referral_sync.models import ChangeEvent, Referral, RewardEntry, RoutingDecision
from referral_sync.store import Store

T = TypeVar("T")

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class Metrics:
    """The counters, gauges and histograms /metrics exposes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.queue_depth: Callable[[], int] | None = None
        self.registry = r = CollectorRegistry()
        self.referrals = Counter(
            "referral_sync_referrals_submitted", "Referral submissions by outcome",
            ["outcome"], registry=r)
        self.events_received = Counter(
            "referral_sync_events_received", "CRM events received", ["provider"], registry=r)
        self.events_deduplicated = Counter(
            "referral_sync_events_deduplicated", "CRM events already in the inbox",
            ["provider"], registry=r)
        self.events_processed = Counter(
            "referral_sync_events_processed", "Inbox events processed", ["provider"],
            registry=r)
        self.events_failed = Counter(
            "referral_sync_events_failed", "Failed processing attempts; outcome is retry or "
            "dead (dead-lettered)", ["provider", "outcome"], registry=r)
        self.lease_expiries = Counter(
            "referral_sync_lease_expiries", "Jobs whose worker died or stalled past its lease",
            registry=r)
        self.crm_calls = Counter(
            "referral_sync_crm_calls", "CRM port calls", ["operation"], registry=r)
        self.crm_errors = Counter(
            "referral_sync_crm_errors", "CRM port errors", ["operation", "kind"], registry=r)
        self.request_seconds = Histogram(
            "referral_sync_request_seconds", "HTTP handling time", ["endpoint"], registry=r)
        self.job_seconds = Histogram(
            "referral_sync_job_seconds", "Time to process one inbox event",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.event_lag_seconds = Histogram(
            "referral_sync_event_lag_seconds", "From receipt to processed",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.jobs = Gauge("referral_sync_jobs", "Inbox jobs by state", ["state"], registry=r)
        self.queue_messages = Gauge(
            "referral_sync_queue_depth", "Messages waiting in the task queue", registry=r)

    def render(self) -> bytes:
        """The text exposition, with job and queue gauges refreshed."""
        for state, count in self.store.inbox.counts().items():
            if state != "events":
                self.jobs.labels(state=state).set(count)
        if self.queue_depth is not None:
            self.queue_messages.set(self.queue_depth())
        return generate_latest(self.registry)


def error_kind(exc: BaseException) -> str:
    """A small, stable label for a CRM failure."""
    status = getattr(exc, "http_status", None)
    if isinstance(exc, CrmRetryableError):
        if status == 429:
            return "rate_limited"
        if status is not None and status >= 500:
            return "server_error"
        return "unavailable"
    if isinstance(exc, CrmPermanentError):
        return "rejected"
    return "other"


class MeteredCrm:
    """A ``CrmPort`` that counts every call and error of the port it wraps."""

    def __init__(self, inner: CrmPort, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.provider = inner.provider
        self.statuses_set_by_crm = inner.statuses_set_by_crm

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        self.metrics.crm_calls.labels(operation=operation).inc()
        try:
            return fn()
        except Exception as exc:
            self.metrics.crm_errors.labels(operation=operation, kind=error_kind(exc)).inc()
            raise

    def load_intake(self, lookup: IntakeLookup) -> IntakeSnapshot:
        """See ``CrmPort``."""
        return self._call("load_intake", lambda: self.inner.load_intake(lookup))

    def find_duplicates(self, email: str, domain: str | None, company_key: str,
                        since: datetime) -> list[DuplicateCandidate]:
        """See ``CrmPort``."""
        return self._call("find_duplicates",
                          lambda: self.inner.find_duplicates(email, domain, company_key, since))

    def load_referrer(self, email: str) -> ReferrerContext | None:
        """See ``CrmPort``."""
        return self._call("load_referrer", lambda: self.inner.load_referrer(email))

    def find_account_by_domain(self, domain: str) -> ReferrerContext | None:
        """See ``CrmPort``."""
        return self._call("find_account_by_domain",
                          lambda: self.inner.find_account_by_domain(domain))

    def get_owner(self, ref: str) -> Owner | None:
        """See ``CrmPort``."""
        return self._call("get_owner", lambda: self.inner.get_owner(ref))

    def apply_changes(
        self, referral: Referral, *, fields: dict[str, object] | None = None,
        rewards: Sequence[RewardEntry] = (), tasks: Sequence[CrmTask] = (),
    ) -> AppliedChanges:
        """See ``CrmPort``."""
        return self._call("apply_changes", lambda: self.inner.apply_changes(
            referral, fields=fields, rewards=rewards, tasks=tasks))

    def create_referral(self, referral: Referral, decision: RoutingDecision, *,
                        tasks: Sequence[CrmTask] = ()) -> CrmRecordRef:
        """See ``CrmPort``."""
        return self._call("create_referral",
                          lambda: self.inner.create_referral(referral, decision, tasks=tasks))

    def update_referral(self, referral: Referral, *,
                        fields: dict[str, object] | None = None) -> None:
        """See ``CrmPort``."""
        self._call("update_referral", lambda: self.inner.update_referral(referral, fields=fields))

    def read_referral(self, referral: Referral) -> ReferralSnapshot:
        """See ``CrmPort``."""
        return self._call("read_referral", lambda: self.inner.read_referral(referral))

    def upsert_reward(self, entry: RewardEntry) -> str:
        """See ``CrmPort``."""
        return self._call("upsert_reward", lambda: self.inner.upsert_reward(entry))

    def create_task(self, task: CrmTask) -> str:
        """See ``CrmPort``."""
        return self._call("create_task", lambda: self.inner.create_task(task))

    def list_changes(self, since: datetime) -> Iterator[ChangeEvent]:
        """See ``CrmPort``; errors raised while the caller iterates are counted too."""
        self.metrics.crm_calls.labels(operation="list_changes").inc()
        try:
            yield from self.inner.list_changes(since)
        except Exception as exc:
            self.metrics.crm_errors.labels(operation="list_changes",
                                           kind=error_kind(exc)).inc()
            raise

    def ensure_schema(self, *, dry_run: bool) -> list[SchemaChange]:
        """See ``CrmPort``."""
        return self._call("ensure_schema", lambda: self.inner.ensure_schema(dry_run=dry_run))

    def api_calls(self) -> int:
        """See ``CrmPort``."""
        return self.inner.api_calls()
