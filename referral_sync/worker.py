"""The worker: lease due jobs, hand each event to the service, then complete, retry with
backoff (honouring Retry-After) or dead-letter it. The job row, not the queue, is the truth."""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from referral_sync.clock import Clock
from referral_sync.errors import PermanentError, RetryableError
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
        return max(backoff, retry_after or 0.0)


@dataclass
class WorkerStats:
    """Counts from one or more worker passes."""

    processed: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


def default_worker_name() -> str:
    """host:pid, so a lease tells which process holds it."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Processes inbox jobs with leases."""

    def __init__(self, store: Store, handle: Callable[[ChangeEvent], object], clock: Clock, *,
                 name: str | None = None, retry: RetryPolicy | None = None,
                 lease_seconds: float = 120, jitter: Callable[[], float] = random.random) -> None:
        self.store = store
        self.handle = handle
        self.clock = clock
        self.name = name or default_worker_name()
        self.retry = retry or RetryPolicy()
        self.lease_seconds = lease_seconds
        self.jitter = jitter

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
            total.processed += stats.processed
            total.retried += stats.retried
            total.dead += stats.dead
            total.errors += stats.errors
            if not (stats.processed or stats.retried or stats.dead):
                break
        return total

    def _process(self, job: Job, stats: WorkerStats) -> None:
        event = job.event
        try:
            self.handle(event)
        except RetryableError as exc:
            self._failed(job, stats, exc, retryable=True, retry_after=exc.retry_after)
        except PermanentError as exc:
            self._failed(job, stats, exc, retryable=False, retry_after=None)
        except Exception as exc:  # noqa: BLE001 - an unknown bug must not kill the worker
            log.exception("job crashed", extra={"job_id": job.id, "event_id": event.event_id})
            self._failed(job, stats, exc, retryable=True, retry_after=None)
        else:
            self.store.inbox.complete(job, self.clock())
            stats.processed += 1

    def _failed(self, job: Job, stats: WorkerStats, exc: Exception, *, retryable: bool,
                retry_after: float | None) -> None:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        stats.errors.append(error)
        now = self.clock()
        if retryable and job.attempts < self.retry.max_attempts:
            delay = self.retry.delay(job.attempts, retry_after, self.jitter())
            self.store.inbox.retry_later(job, now, now + timedelta(seconds=delay), error)
            stats.retried += 1
            log.warning("job will be retried", extra={"job_id": job.id, "delay": delay})
            return
        self.store.inbox.dead_letter(job, now, error)
        stats.dead += 1
        log.error("job dead-lettered", extra={"job_id": job.id,
                                              "event_id": job.event.event_id})

    def run_forever(self, stop: threading.Event, *, poll_seconds: float = 1.0,
                    sweep_every: int = 30) -> None:
        """Process jobs until ``stop`` is set; every ``sweep_every`` polls, return expired
        leases of dead workers to the queue."""
        polls = 0
        while not stop.is_set():
            if polls % sweep_every == 0:
                self.store.inbox.sweep_expired(self.clock())
            stats = self.run_once()
            polls += 1
            if not stats.processed and not stats.retried and not stats.dead:
                stop.wait(poll_seconds)
