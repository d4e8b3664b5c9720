"""The durable inbox and its leased jobs: the truth about which CRM events were received and
which are processed. A queue only carries job ids; a crashed worker's lease expires and the
sweeper hands the job out again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from referral_sync.models import ChangeEvent
from referral_sync.store.tables import inbox, jobs


class JobState:
    """Job row states."""

    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"
    DEAD = "dead"


@dataclass(frozen=True)
class ReceiveResult:
    """What storing a batch did: new events stored, duplicates ignored, jobs created."""

    stored: int
    duplicates: int
    job_ids: list[int]


@dataclass(frozen=True)
class Job:
    """A leased unit of work: one inbox event."""

    id: int
    attempts: int
    event: ChangeEvent
    lease_owner: str
    received_at: datetime | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A job that failed permanently or ran out of attempts."""

    id: int
    provider: str
    event_id: str
    attempts: int
    last_error: str | None
    finished_at: datetime | None


class Inbox:
    """Inbox rows (unique per provider event) and the job attached to each."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._insert: tuple[Any, Any] | None = None

    def receive(self, events: list[ChangeEvent], now: datetime, *,
                enqueued: bool = False) -> ReceiveResult:
        """Store events not seen before plus a pending job for each, in one transaction.

        ``enqueued`` says the caller will announce the new jobs on the queue right after the
        commit; otherwise the sweeper announces them.
        """
        for attempt in range(_DEADLOCK_RETRIES):
            try:
                return self._receive_once(events, now, enqueued)
            except sa.exc.OperationalError as exc:
                # Two nodes storing overlapping batches can still meet on PostgreSQL (one
                # side's index lock, the other's row); the loser's transaction is rolled
                # back whole, so running it again is safe.
                if attempt + 1 == _DEADLOCK_RETRIES or not _is_deadlock(exc):
                    raise
        raise AssertionError("unreachable")

    def _receive_once(self, events: list[ChangeEvent], now: datetime,
                      enqueued: bool) -> ReceiveResult:
        stored, job_ids = 0, []
        with self._engine.begin() as conn:
            add_event, add_job = self._statements(conn)
            # A fixed order makes concurrent batches take the unique-index locks in the same
            # order, so overlapping deliveries wait for each other instead of deadlocking.
            for event in sorted(_unique(events), key=lambda e: (e.provider, e.event_id)):
                inbox_id = conn.execute(add_event, {
                    "provider": event.provider, "event_id": event.event_id,
                    "received_at": now, "payload": event.model_dump(mode="json"),
                }).scalar_one_or_none()
                if inbox_id is None:
                    continue  # seen before: the unique (provider, event_id) said so
                job_ids.append(int(conn.execute(add_job, {
                    "inbox_id": inbox_id, "state": JobState.PENDING, "attempts": 0,
                    "next_attempt_at": now, "created_at": now,
                    "enqueued_at": now if enqueued else None,
                }).scalar_one()))
                stored += 1
        return ReceiveResult(stored=stored, duplicates=len(events) - stored, job_ids=job_ids)

    def _statements(self, conn: sa.Connection) -> tuple[Any, Any]:
        # Built once: the intake path runs for every webhook, and building a statement costs
        # as much as executing it on SQLite.
        if self._insert is None:
            self._insert = (
                _insert_ignoring_duplicates(conn).returning(inbox.c.id),
                jobs.insert().returning(jobs.c.id),
            )
        return self._insert

    def lease(
        self, owner: str, now: datetime, *, lease_seconds: float = 60, limit: int = 20,
        job_ids: list[int] | None = None,
    ) -> list[Job]:
        """Lease up to ``limit`` due pending jobs (or the given ones, if due) to ``owner``."""
        expires = now + timedelta(seconds=lease_seconds)
        with self._engine.begin() as conn:
            query = (
                sa.select(jobs.c.id)
                .where(jobs.c.state == JobState.PENDING, jobs.c.next_attempt_at <= now)
                .order_by(jobs.c.id)
                .limit(limit)
            )
            if job_ids is not None:
                query = query.where(jobs.c.id.in_(job_ids))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = [row.id for row in conn.execute(query)]
            if not ids:
                return []
            conn.execute(
                jobs.update()
                .where(jobs.c.id.in_(ids), jobs.c.state == JobState.PENDING)
                .values(
                    state=JobState.LEASED,
                    lease_owner=owner,
                    lease_expires_at=expires,
                    attempts=jobs.c.attempts + 1,
                )
            )
            rows = conn.execute(
                sa.select(jobs.c.id, jobs.c.attempts, inbox.c.payload, inbox.c.received_at)
                .join(inbox, inbox.c.id == jobs.c.inbox_id)
                .where(jobs.c.id.in_(ids), jobs.c.lease_owner == owner)
                .order_by(jobs.c.id)
            )
            return [
                Job(id=r.id, attempts=r.attempts, lease_owner=owner,
                    event=ChangeEvent.model_validate(r.payload), received_at=r.received_at)
                for r in rows
            ]

    def complete(self, job: Job, now: datetime) -> None:
        """Mark a leased job done (only if the lease is still ours)."""
        self._finish(job, now, state=JobState.DONE, error=None, next_at=None)

    def retry_later(self, job: Job, now: datetime, next_at: datetime, error: str) -> None:
        """Return a job to pending, due at ``next_at``, remembering the error."""
        self._finish(job, now, state=JobState.PENDING, error=error, next_at=next_at)

    def dead_letter(self, job: Job, now: datetime, error: str) -> None:
        """Park a job that cannot succeed; ``replay`` can try it again."""
        self._finish(job, now, state=JobState.DEAD, error=error, next_at=None)

    def _finish(
        self, job: Job, now: datetime, *, state: str, error: str | None, next_at: datetime | None
    ) -> None:
        values: dict[str, object] = {
            "state": state, "lease_owner": None, "lease_expires_at": None, "last_error": error,
        }
        if next_at is not None:
            values["next_attempt_at"] = next_at
        if state == JobState.PENDING:
            # The message that announced this attempt is used up; the sweeper announces
            # the job again once it is due.
            values["enqueued_at"] = None
        if state in (JobState.DONE, JobState.DEAD):
            values["finished_at"] = now
        with self._engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job.id, jobs.c.lease_owner == job.lease_owner,
                       jobs.c.state == JobState.LEASED)
                .values(**values)
            )

    def sweep_expired(self, now: datetime) -> list[int]:
        """Return jobs whose lease expired (their worker died) to pending; their ids."""
        with self._engine.begin() as conn:
            rows = conn.execute(
                jobs.update()
                .where(jobs.c.state == JobState.LEASED, jobs.c.lease_expires_at < now)
                .values(state=JobState.PENDING, lease_owner=None, lease_expires_at=None,
                        next_attempt_at=now, enqueued_at=None, last_error="lease expired")
                .returning(jobs.c.id)
            )
            return sorted(r.id for r in rows)

    def claim_unannounced(self, now: datetime, *, stale_after: float = 60.0,
                          limit: int = 1000) -> list[int]:
        """Due pending jobs that no queue message announces (never announced, retried,
        swept, replayed, or announced more than ``stale_after`` seconds ago, in case the
        message was lost); marks them announced now and returns their ids."""
        stale = now - timedelta(seconds=stale_after)
        with self._engine.begin() as conn:
            query = (
                sa.select(jobs.c.id)
                .where(jobs.c.state == JobState.PENDING, jobs.c.next_attempt_at <= now,
                       sa.or_(jobs.c.enqueued_at.is_(None), jobs.c.enqueued_at < stale))
                .order_by(jobs.c.id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = [r.id for r in conn.execute(query)]
            if ids:
                conn.execute(jobs.update().where(jobs.c.id.in_(ids)).values(enqueued_at=now))
            return ids

    def next_due(self) -> datetime | None:
        """When the earliest pending job falls due (None when nothing is pending)."""
        with self._engine.connect() as conn:
            value: datetime | None = conn.execute(
                sa.select(sa.func.min(jobs.c.next_attempt_at))
                .where(jobs.c.state == JobState.PENDING)
            ).scalar_one()
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead job, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.id, jobs.c.attempts, jobs.c.last_error, jobs.c.finished_at,
                          inbox.c.provider, inbox.c.event_id)
                .join(inbox, inbox.c.id == jobs.c.inbox_id)
                .where(jobs.c.state == JobState.DEAD)
                .order_by(jobs.c.id)
            )
            return [DeadLetter(id=r.id, provider=r.provider, event_id=r.event_id,
                               attempts=r.attempts, last_error=r.last_error,
                               finished_at=r.finished_at) for r in rows]

    def replay(self, job_ids: list[int] | None, now: datetime) -> list[int]:
        """Send dead jobs (all, or the given ids) back to pending with a fresh attempt count."""
        with self._engine.begin() as conn:
            query = sa.select(jobs.c.id).where(jobs.c.state == JobState.DEAD)
            if job_ids is not None:
                query = query.where(jobs.c.id.in_(job_ids))
            ids = [r.id for r in conn.execute(query)]
            if ids:
                conn.execute(
                    jobs.update().where(jobs.c.id.in_(ids))
                    .values(state=JobState.PENDING, attempts=0, next_attempt_at=now,
                            finished_at=None, enqueued_at=None)
                )
        return ids

    def counts(self) -> dict[str, int]:
        """Jobs per state (pending, leased, done, dead) and inbox rows ("events")."""
        with self._engine.connect() as conn:
            result = {state: 0 for state in
                      (JobState.PENDING, JobState.LEASED, JobState.DONE, JobState.DEAD)}
            for row in conn.execute(
                sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)
            ):
                result[row[0]] = row[1]
            result["events"] = conn.execute(
                sa.select(sa.func.count()).select_from(inbox)).scalar_one()
            return result


_DEADLOCK_RETRIES = 5


def _is_deadlock(exc: sa.exc.OperationalError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40P01", "40001")  # deadlock_detected, serialization_failure


def _insert_ignoring_duplicates(conn: sa.Connection) -> Any:
    """``INSERT … ON CONFLICT (provider, event_id) DO NOTHING`` for the connection's dialect."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return dialect_insert(inbox).on_conflict_do_nothing(
        index_elements=[inbox.c.provider, inbox.c.event_id])


def _unique(events: list[ChangeEvent]) -> list[ChangeEvent]:
    seen: dict[tuple[str, str], ChangeEvent] = {}
    for event in events:
        seen.setdefault((event.provider, event.event_id), event)
    return list(seen.values())
