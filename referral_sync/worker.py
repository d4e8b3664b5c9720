"""The worker: lease due jobs, hand each event to the service, then complete, retry with
backoff (honouring Retry-After) or dead-letter it. The job row, not the queue, is the truth:
a queue message only says "look at jobs 4, 5, 6"."""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from referral_sync.clock import Clock
from referral_sync.errors import ConcurrentUpdate, PermanentError, RetryableError
from referral_sync.logs import log_context
from referral_sync.metrics import Metrics
from referral_sync.models import ChangeEvent
from referral_sync.store import Job, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; permanent errors are never retried."""

    max_attempts: int = 8
    base_seconds: float = 2.0
    cap_seconds: float = 3600.0

    def delay(self, attempts: int, retry_after: float | None, jitter: float) -> float:
        """Seconds to wait before attempt ``attempts + 1``; ``jitter`` in [0, 1)."""
        backoff = min(self.cap_seconds, self.base_seconds * 2.0 ** max(attempts - 1, 0))
        backoff *= 0.5 + jitter / 2
        # The CRM's Retry-After wins over a shorter backoff (and is never cut by the cap).
        return max(backoff, retry_after or 0.0)


@dataclass
class WorkerStats:
    """Counts from one or more worker passes."""

    processed: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: WorkerStats) -> None:
        """Fold ``other`` into these counts."""
        self.processed += other.processed
        self.retried += other.retried
        self.dead += other.dead
        self.errors += other.errors

    @property
    def busy(self) -> bool:
        """Whether the pass did anything."""
        return bool(self.processed or self.retried or self.dead)


def default_worker_name() -> str:
    """host:pid, so a lease tells which process holds it."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Processes inbox jobs with leases."""

    RACE_RERUNS = 4

    def __init__(self, store: Store, handle: Callable[[ChangeEvent], object], clock: Clock, *,
                 name: str | None = None, retry: RetryPolicy | None = None,
                 lease_seconds: float = 120, jitter: Callable[[], float] = random.random,
                 metrics: Metrics | None = None) -> None:
        self.store = store
        self.handle = handle
        self.clock = clock
        self.name = name or default_worker_name()
        self.retry = retry or RetryPolicy()
        self.lease_seconds = lease_seconds
        self.jitter = jitter
        self.metrics = metrics

    def run_once(self, *, limit: int = 50, job_ids: list[int] | None = None) -> WorkerStats:
        """Lease and process up to ``limit`` due jobs (optionally only ``job_ids``)."""
        stats = WorkerStats()
        jobs = self.store.inbox.lease(self.name, self.clock(), lease_seconds=self.lease_seconds,
                                      limit=limit, job_ids=job_ids)
        for job in jobs:
            self._process(job, stats)
        return stats

    def drain(self, *, max_passes: int = 100) -> WorkerStats:
        """Process until no job is due (for the CLI, demo and tests)."""
        total = WorkerStats()
        for _ in range(max_passes):
            stats = self.run_once()
            total.add(stats)
            if not stats.busy:
                break
        return total

    def sweep(self) -> list[int]:
        """Return jobs of dead or stalled workers (expired leases) to pending."""
        expired = self.store.inbox.sweep_expired(self.clock())
        if expired:
            log.warning("leases expired; jobs returned to the queue",
                        extra={"job_ids": expired[:20], "count": len(expired)})
            if self.metrics:
                self.metrics.lease_expiries.inc(len(expired))
        return expired

    def _process(self, job: Job, stats: WorkerStats) -> None:
        event = job.event
        started = time.perf_counter()
        with log_context(event_id=event.event_id, provider=event.provider, job_id=job.id,
                         attempt=job.attempts):
            try:
                if event.noop_reason:
                    # Kept for the record (an echo of our own write, an unhandled type).
                    log.debug("event ignored", extra={"reason": event.noop_reason})
                else:
                    self._handle_racing(event)
            except RetryableError as exc:
                self._failed(job, stats, exc, retryable=True, retry_after=exc.retry_after)
            except PermanentError as exc:
                self._failed(job, stats, exc, retryable=False, retry_after=None)
            except Exception as exc:  # noqa: BLE001 - an unknown bug must not kill the worker
                log.exception("job crashed")
                self._failed(job, stats, exc, retryable=True, retry_after=None)
            else:
                now = self.clock()
                self.store.inbox.complete(job, now)
                stats.processed += 1
                log.debug("job done")
                if self.metrics:
                    self.metrics.events_processed.labels(provider=event.provider).inc()
                    received = job.received_at or now
                    self.metrics.event_lag_seconds.observe(
                        max((now - received).total_seconds(), 0.0))
            finally:
                if self.metrics:
                    self.metrics.job_seconds.observe(time.perf_counter() - started)

    def _handle_racing(self, event: ChangeEvent) -> None:
        """Handle ``event``; when another worker saved the same referral meanwhile, run it
        again at once from what is stored now. A lost race is not an outage, so it should
        not wait out a backoff; only a referral that keeps changing falls back to one."""
        for attempt in range(1, self.RACE_RERUNS + 1):
            try:
                self.handle(event)
                return
            except ConcurrentUpdate:
                if attempt == self.RACE_RERUNS:
                    raise
                log.info("referral changed meanwhile; running the event again")
                time.sleep(self.jitter() * 0.02 * attempt)  # let the racing worker finish

    def _failed(self, job: Job, stats: WorkerStats, exc: Exception, *, retryable: bool,
                retry_after: float | None) -> None:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        stats.errors.append(error)
        now = self.clock()
        provider = job.event.provider
        if retryable and job.attempts < self.retry.max_attempts:
            delay = self.retry.delay(job.attempts, retry_after, self.jitter())
            self.store.inbox.retry_later(job, now, now + timedelta(seconds=delay), error)
            stats.retried += 1
            log.warning("job will be retried", extra={"delay": round(delay, 3),
                                                      "error": type(exc).__name__})
            if self.metrics:
                self.metrics.events_failed.labels(provider=provider, outcome="retry").inc()
            return
        self.store.inbox.dead_letter(job, now, error)
        stats.dead += 1
        log.error("job dead-lettered", extra={"error": error})
        if self.metrics:
            self.metrics.events_failed.labels(provider=provider, outcome="dead").inc()
