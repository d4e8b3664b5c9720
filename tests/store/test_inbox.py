"""The inbox and its leased jobs on SQLite and PostgreSQL: one row per provider event, one
lease holder per job, expired leases swept back, retries and dead letters, and the
announcement bookkeeping the queue sweeper relies on."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from referral_sync.models import ChangeEvent, CrmObject
from referral_sync.store import JobState, Store

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def event(n: int, provider: str = "hubspot") -> ChangeEvent:
    return ChangeEvent(provider=provider, event_id=f"evt-{n}", object_type=CrmObject.CONTACT,
                       record_id=f"rec-{n}", occurred_at=T0)


def test_each_provider_event_is_stored_once_with_one_job(store: Store) -> None:
    first = store.inbox.receive([event(1), event(2), event(1)], T0)
    again = store.inbox.receive([event(2), event(3), event(1, provider="salesforce")], T0)
    assert (first.stored, first.duplicates) == (2, 1)
    assert (again.stored, again.duplicates) == (2, 1)
    counts = store.inbox.counts()
    assert counts["events"] == 4 and counts[JobState.PENDING] == 4


def test_concurrent_deliveries_of_one_batch_store_it_once(store: Store) -> None:
    batch = [event(n) for n in range(30)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: store.inbox.receive(batch, T0), range(4)))
    assert sum(r.stored for r in results) == 30
    assert sum(r.duplicates for r in results) == 90
    assert store.inbox.counts()["events"] == 30


def test_a_job_is_leased_to_one_worker_only(store: Store) -> None:
    store.inbox.receive([event(n) for n in range(40)], T0)

    def lease(name: str) -> list[int]:
        got: list[int] = []
        while batch := store.inbox.lease(name, T0, limit=3):
            got += [job.id for job in batch]
        return got

    with ThreadPoolExecutor(4) as pool:
        leased = list(pool.map(lease, ["a", "b", "c", "d"]))
    every = [job_id for ids in leased for job_id in ids]
    assert len(every) == 40 and len(set(every)) == 40


def test_lease_takes_only_due_jobs_and_only_the_named_ones(store: Store) -> None:
    ids = store.inbox.receive([event(n) for n in range(3)], T0).job_ids
    job = store.inbox.lease("w", T0, limit=1)[0]
    store.inbox.retry_later(job, T0, T0 + timedelta(seconds=30), "429")
    assert [j.id for j in store.inbox.lease("w", T0, job_ids=[ids[0], ids[2]])] == [ids[2]]
    assert [j.id for j in store.inbox.lease("w", T0 + timedelta(seconds=10))] == [ids[1]]
    assert store.inbox.lease("w", T0 + timedelta(seconds=20)) == []
    retried = store.inbox.lease("w", T0 + timedelta(seconds=31))
    assert [(j.id, j.attempts) for j in retried] == [(ids[0], 2)]


def test_expired_leases_return_to_pending_and_the_late_worker_cannot_finish(
        store: Store) -> None:
    store.inbox.receive([event(1)], T0)
    stale = store.inbox.lease("dead-worker", T0, lease_seconds=60)[0]
    assert store.inbox.sweep_expired(T0 + timedelta(seconds=59)) == []
    assert store.inbox.sweep_expired(T0 + timedelta(seconds=61)) == [stale.id]
    fresh = store.inbox.lease("live-worker", T0 + timedelta(seconds=62))[0]
    store.inbox.complete(stale, T0 + timedelta(seconds=63))  # the old holder wakes up late
    assert store.inbox.counts()[JobState.LEASED] == 1
    store.inbox.complete(fresh, T0 + timedelta(seconds=64))
    assert store.inbox.counts()[JobState.DONE] == 1


def test_dead_letters_are_listed_and_replayed_with_fresh_attempts(store: Store) -> None:
    store.inbox.receive([event(1), event(2)], T0)
    for job in store.inbox.lease("w", T0):
        store.inbox.dead_letter(job, T0, f"CrmPermanentError: no field on {job.event.event_id}")
    dead = store.inbox.dead_letters()
    assert [(d.event_id, d.attempts) for d in dead] == [("evt-1", 1), ("evt-2", 1)]
    assert dead[0].last_error == "CrmPermanentError: no field on evt-1"
    assert store.inbox.replay([dead[1].id], T0) == [dead[1].id]
    replayed = store.inbox.lease("w", T0)
    assert [(j.event.event_id, j.attempts) for j in replayed] == [("evt-2", 1)]
    assert [d.event_id for d in store.inbox.dead_letters()] == ["evt-1"]


def test_unannounced_jobs_are_claimed_once_then_again_when_stale(store: Store) -> None:
    announced = store.inbox.receive([event(1)], T0, enqueued=True).job_ids
    silent = store.inbox.receive([event(2)], T0).job_ids
    assert store.inbox.claim_unannounced(T0, stale_after=60) == silent
    assert store.inbox.claim_unannounced(T0, stale_after=60) == []
    later = T0 + timedelta(seconds=61)
    assert store.inbox.claim_unannounced(later, stale_after=60) == announced + silent


def test_a_retried_or_swept_job_is_announced_again_when_due(store: Store) -> None:
    ids = store.inbox.receive([event(1), event(2)], T0, enqueued=True).job_ids
    first, second = store.inbox.lease("w", T0, lease_seconds=10)
    store.inbox.retry_later(first, T0, T0 + timedelta(seconds=5), "CrmRetryableError")
    assert store.inbox.claim_unannounced(T0 + timedelta(seconds=1)) == []
    assert store.inbox.claim_unannounced(T0 + timedelta(seconds=6)) == [ids[0]]
    assert store.inbox.sweep_expired(T0 + timedelta(seconds=11)) == [second.id]
    assert store.inbox.claim_unannounced(T0 + timedelta(seconds=11)) == [ids[1]]
