"""The durable inbox and its leased jobs: the truth about which CRM events were received and
which are processed. A queue only carries job ids; a crashed worker's lease expires and the
sweeper hands the job out again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

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

    def receive(self, events: list[ChangeEvent], now: datetime) -> ReceiveResult:
        """Store events not seen before plus a pending job for each, in one transaction."""
        try:
            return self._receive_once(events, now)
        except sa.exc.IntegrityError:
            # Another node stored one of these events between our check and our insert
            # (PostgreSQL, READ COMMITTED); a second pass sees it and skips it.
            return self._receive_once(events, now)

    def _receive_once(self, events: list[ChangeEvent], now: datetime) -> ReceiveResult:
        stored, job_ids = 0, []
        with self._engine.begin() as conn:
            for event in _unique(events):
                exists = conn.execute(
                    sa.select(inbox.c.id).where(
                        inbox.c.provider == event.provider, inbox.c.event_id == event.event_id
                    )
                ).first()
                if exists:
                    continue
                inbox_id = conn.execute(
                    inbox.insert().values(
                        provider=event.provider,
                        event_id=event.event_id,
                        received_at=now,
                        payload=event.model_dump(mode="json"),
                    )
                ).inserted_primary_key
                assert inbox_id is not None
                job_id = conn.execute(
                    jobs.insert().values(
                        inbox_id=inbox_id[0],
                        state=JobState.PENDING,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                ).inserted_primary_key
                assert job_id is not None
                stored += 1
                job_ids.append(int(job_id[0]))
        return ReceiveResult(stored=stored, duplicates=len(events) - stored, job_ids=job_ids)

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
                sa.select(jobs.c.id, jobs.c.attempts, inbox.c.payload)
                .join(inbox, inbox.c.id == jobs.c.inbox_id)
                .where(jobs.c.id.in_(ids), jobs.c.lease_owner == owner)
                .order_by(jobs.c.id)
            )
            return [
                Job(id=r.id, attempts=r.attempts, lease_owner=owner,
                    event=ChangeEvent.model_validate(r.payload))
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
            ids = [
                r.id
                for r in conn.execute(
                    sa.select(jobs.c.id).where(
                        jobs.c.state == JobState.LEASED, jobs.c.lease_expires_at < now
                    )
                )
            ]
            if ids:
                conn.execute(
                    jobs.update()
                    .where(jobs.c.id.in_(ids), jobs.c.state == JobState.LEASED)
                    .values(state=JobState.PENDING, lease_owner=None, lease_expires_at=None,
                            next_attempt_at=now, last_error="lease expired")
                )
        return ids

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
                            finished_at=None)
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
            result["events"] = conn.execute(sa.select(sa.func.count()).select_from(inbox)).scalar_one()
            return result


def _unique(events: list[ChangeEvent]) -> list[ChangeEvent]:
    seen: dict[tuple[str, str], ChangeEvent] = {}
    for event in events:
        seen.setdefault((event.provider, event.event_id), event)
    return list(seen.values())
