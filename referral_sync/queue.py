"""The task queue: huey carrying job ids, never the work itself.

The job rows in the store are the truth (DESIGN.md §5). ``Components.receive_events`` stores
a batch, commits, then ``JobQueue.wake`` enqueues a "process these job ids" message; a
consumer's ``Tasks.process`` leases those ids through the ``Worker``. huey drops a message
whose worker dies (at-most-once), so ``Ticker`` runs a periodic sweep that returns expired
leases and announces every due job no message covers (retries, lost messages, jobs stored by
reconcile or a deferred intake). The same ticker drives the reconcile sweep, SLA checks and
monthly digests; a claim row in the store keeps several nodes from running one tick twice.

Backends: ``sqlite:///path`` → ``SqliteHuey`` (embedded default), ``redis://…`` →
``RedisHuey`` (several nodes), ``memory://`` → ``MemoryHuey`` (tests). A ``?queue=NAME``
parameter names the queue, so deployments can share one Redis.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey
from huey.consumer import Consumer
from sqlalchemy.engine import make_url

from referral_sync.clock import Clock
from referral_sync.errors import ConfigurationError
from referral_sync.store import Store
from referral_sync.worker import Worker, WorkerStats

log = logging.getLogger(__name__)

DEFAULT_QUEUE_NAME = "referral-sync"
#: Job ids per queue message: small enough to spread a burst over several workers.
BATCH_SIZE = 20
#: How long the announcer gathers job ids before it writes one queue message.
COALESCE_SECONDS = 0.005
#: A message older than this whose job is still pending is presumed lost and re-sent.
ANNOUNCE_STALE_SECONDS = 60.0


def build_huey(url: str) -> Huey:
    """The huey instance for a queue URL.

    Raises:
        ConfigurationError: for an unsupported or malformed URL.
    """
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    name = params.pop("queue", DEFAULT_QUEUE_NAME)
    options: dict[str, Any] = {"results": False, "utc": True}
    if parts.scheme == "sqlite":
        # urlsplit would fold sqlite:////abs/path; SQLAlchemy's parser keeps it.
        filename = make_url(url).database
        if not filename:
            raise ConfigurationError("queue URL needs a file: sqlite:///referral-sync-queue.db")
        return SqliteHuey(name, filename=filename, **options)
    if parts.scheme in ("redis", "rediss", "unix"):
        clean = urlunsplit(parts._replace(query=urlencode(params)))
        return RedisHuey(name, url=clean, **options)
    if parts.scheme == "memory":
        return MemoryHuey(name, **options)
    raise ConfigurationError(
        f"unsupported queue URL scheme {parts.scheme!r}: use sqlite:///… or redis://…")


class TaskHandlers(Protocol):
    """What a consumer does with the two kinds of message."""

    def process(self, job_ids: list[int]) -> WorkerStats:
        """Lease and process these jobs (those still pending and due)."""
        ...

    def periodic(self, name: str) -> None:
        """Run periodic task ``name``."""
        ...


class JobQueue:
    """Enqueues job-id messages and periodic-task messages on huey."""

    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self._handlers: TaskHandlers | None = None
        self._announcer = _Announcer(self.wake)
        # Fixed task names: producer and consumer may be different processes.
        self._process_task = huey.task(name="referral_sync.process_jobs")(self._on_process)
        self._periodic_task = huey.task(name="referral_sync.periodic")(self._on_periodic)

    @classmethod
    def from_url(cls, url: str) -> JobQueue:
        """A queue on the backend ``url`` names."""
        return cls(build_huey(url))

    def bind(self, handlers: TaskHandlers) -> None:
        """Attach the consumer side (a process that only enqueues never calls this)."""
        self._handlers = handlers

    def _bound(self) -> TaskHandlers:
        if self._handlers is None:
            raise ConfigurationError("this process enqueues only; it has no task handlers")
        return self._handlers

    def _on_process(self, job_ids: list[int]) -> None:
        self._bound().process(job_ids)

    def _on_periodic(self, name: str) -> None:
        self._bound().periodic(name)

    def wake(self, job_ids: list[int]) -> bool:
        """Announce ``job_ids`` to the consumers; False (logged, not raised) when the queue
        is unreachable: the jobs are stored, and the sweeper announces them later."""
        try:
            for start in range(0, len(job_ids), BATCH_SIZE):
                self._process_task(list(job_ids[start:start + BATCH_SIZE]))
        except Exception as exc:  # noqa: BLE001 - any queue failure is recoverable later
            log.warning("queue unavailable; stored jobs wait for the sweeper",
                        extra={"error": type(exc).__name__, "jobs": len(job_ids)})
            return False
        return True

    def announce(self, job_ids: list[int]) -> None:
        """``wake`` from a background thread, batching what arrives meanwhile: a webhook's
        answer waits for its commit, not for the queue. Ids still unsent when the process
        dies are re-announced by the sweeper."""
        self._announcer.add(job_ids)

    def settle(self, timeout: float = 5.0) -> bool:
        """Wait until every ``announce``d id is on the queue (tests, shutdown)."""
        return self._announcer.settle(timeout)

    def run_periodic(self, name: str) -> None:
        """Enqueue periodic task ``name`` for whichever consumer is free."""
        self._periodic_task(name)

    def depth(self) -> int:
        """Messages waiting in the queue."""
        return int(self.huey.pending_count())

    def ping(self) -> None:
        """Raise if the queue backend cannot be reached (for /readyz and doctor)."""
        conn = getattr(self.huey.storage, "conn", None)
        if conn is not None and hasattr(conn, "ping"):
            conn.ping()
        else:
            self.huey.pending_count()

    def flush(self) -> None:
        """Drop every waiting message (tests; the sweeper re-announces pending jobs)."""
        self.huey.flush()

    def consumer(self, ticker: Ticker | None, *, threads: int = 2,
                 signals: bool = True) -> QueueConsumer:
        """A consumer of this queue with ``threads`` worker threads; ``signals=False`` when
        embedded in a process that handles its own signals (``serve``)."""
        return QueueConsumer(self.huey, ticker, signals=signals, workers=threads)


class _Announcer:
    """A daemon thread that hands batches of job ids to ``send``."""

    def __init__(self, send: Callable[[list[int]], bool]) -> None:
        self._send = send
        self._pending: list[int] = []
        self._cond = threading.Condition()
        self._in_flight = 0
        self._thread: threading.Thread | None = None

    def add(self, job_ids: list[int]) -> None:
        with self._cond:
            self._pending.extend(job_ids)
            if self._thread is None or not self._thread.is_alive():
                # Started on first use: after a fork (gunicorn), in the process that uses it.
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="referral-sync-announcer")
                self._thread.start()
            self._cond.notify_all()

    def settle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._in_flight,
                                       timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending))
                self._in_flight = -1  # collecting: settle() must not return yet
            # A few milliseconds let a burst of webhooks share one queue message.
            time.sleep(COALESCE_SECONDS)
            with self._cond:
                batch, self._pending = self._pending, []
                self._in_flight = len(batch)
            try:
                self._send(batch)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()


@dataclass
class Tasks:
    """The consumer side: process job ids, sweep, and the other periodic tasks."""

    worker: Worker
    queue: JobQueue
    store: Store
    clock: Clock
    periodic_jobs: Mapping[str, Callable[[], object]] = field(default_factory=dict)

    def process(self, job_ids: list[int]) -> WorkerStats:
        """Lease and process ``job_ids``; jobs another worker holds or that are not due are
        skipped (their own message or the sweeper brings them back)."""
        return self.worker.run_once(job_ids=job_ids, limit=len(job_ids))

    def periodic(self, name: str) -> None:
        """Run periodic task ``name``; ``sweep`` is built in."""
        if name != "sweep":
            job = self.periodic_jobs.get(name)
            if job is None:
                log.error("unknown periodic task", extra={"task": name})
                return
            job()
        self.sweep()

    def sweep(self) -> list[int]:
        """Return expired leases, then announce every due job no live message covers."""
        self.worker.sweep()
        ids = self.store.inbox.claim_unannounced(self.clock(),
                                                 stale_after=ANNOUNCE_STALE_SECONDS)
        if ids:
            self.queue.wake(ids)
        return ids


class Ticker:
    """Claims due periodic tasks in the store and enqueues them; runs in every consumer."""

    def __init__(self, store: Store, queue: JobQueue, every: Mapping[str, float],
                 clock: Clock) -> None:
        self.store = store
        self.queue = queue
        self.every = dict(every)
        self.clock = clock

    def tick(self) -> list[str]:
        """Enqueue each periodic task whose interval has passed; their names."""
        started = []
        for name, seconds in self.every.items():
            try:
                if self.store.schedules.claim(name, self.clock(), seconds):
                    self.queue.run_periodic(name)
                    started.append(name)
            except Exception:  # noqa: BLE001 - an outage must not stop later ticks
                log.exception("periodic tick failed", extra={"task": name})
        return started

    def run(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set."""
        while True:
            self.tick()
            if stop.wait(interval):
                return


class QueueConsumer(Consumer):  # type: ignore[misc]
    """huey's consumer (worker threads) plus our ``Ticker`` thread, optionally without
    installing signal handlers (they belong to the main thread of an embedding process)."""

    def __init__(self, huey: Huey, ticker: Ticker | None, *, signals: bool,
                 **options: Any) -> None:
        # Graceful on SIGTERM: a container stop lets running jobs finish.
        # An idle SQLite-queue worker polls at most every 0.25 s (huey's default backs off to
        # 10 s, which would be the latency of the first webhook after a quiet spell).
        options = {"initial_delay": 0.05, "max_delay": 0.25, **options}
        super().__init__(huey, periodic=False, graceful_signal="TERM", **options)
        self._signals = signals
        self._ticker_thread = (
            threading.Thread(target=ticker.run, args=(self.stop_flag,), daemon=True,
                             name="referral-sync-ticker") if ticker else None)

    def start(self) -> None:
        """Start worker threads and the ticker."""
        super().start()
        if self._ticker_thread:
            self._ticker_thread.start()

    def _set_signal_handlers(self) -> None:
        if self._signals:
            super()._set_signal_handlers()
