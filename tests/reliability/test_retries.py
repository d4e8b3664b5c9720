"""Retries and dead letters as an operator sees them: permanent CRM errors are not retried,
Retry-After is honoured, the attempt limit dead-letters a job, ``referral-sync events``
lists it and ``events replay`` finishes it; echoes of our own writes change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from referral_sync.cli import cli
from referral_sync.errors import ConcurrentUpdate, CrmPermanentError, CrmRetryableError
from referral_sync.local import tables as t
from referral_sync.models import ChangeEvent, CrmObject
from referral_sync.store import JobState
from referral_sync.store.tables import jobs
from referral_sync.worker import RetryPolicy
from tests.reliability.world import Clock, World


def qualified_event(world: World) -> tuple[str, list[ChangeEvent]]:
    referral_id = world.submit()
    assert referral_id
    assert world.next_step(referral_id)  # the AE qualifies the lead
    events = [e for e in world.changes() if e.referral_id == referral_id]
    return referral_id, events


def job_row(world: World) -> sa.Row[tuple[object, ...]]:
    with world.components.store.engine.connect() as conn:
        return conn.execute(
            sa.select(jobs.c.state, jobs.c.attempts, jobs.c.next_attempt_at, jobs.c.last_error)
            .order_by(jobs.c.id.desc()).limit(1)).one()


def test_a_permanent_crm_error_is_dead_lettered_at_once(world: World) -> None:
    _, events = qualified_event(world)
    world.faulty.fail_with = CrmPermanentError("INVALID_FIELD: Referral_Status__c",
                                               provider="local", http_status=400)
    world.deliver(events[-1:])
    stats = world.components.worker.drain()
    assert (stats.processed, stats.retried, stats.dead) == (0, 0, 1)
    row = job_row(world)
    assert (row.state, row.attempts) == (JobState.DEAD, 1)
    assert "INVALID_FIELD" in row.last_error


def test_retry_after_from_the_crm_is_honoured(world: World, wclock: Clock) -> None:
    _, events = qualified_event(world)
    world.faulty.fail_with = CrmRetryableError("REQUEST_LIMIT_EXCEEDED", provider="local",
                                               http_status=429, retry_after=90)
    world.deliver(events[-1:])
    assert world.components.worker.run_once().retried == 1
    assert job_row(world).next_attempt_at == wclock() + timedelta(seconds=90)
    world.faulty.fail_with = None
    wclock.advance(89)
    assert not world.components.worker.run_once().busy
    wclock.advance(1)
    assert world.components.worker.run_once().processed == 1


def test_the_attempt_limit_turns_retries_into_a_dead_letter(world: World,
                                                            wclock: Clock) -> None:
    world.components.worker.retry = RetryPolicy(max_attempts=3, base_seconds=1)
    _, events = qualified_event(world)
    world.faulty.fail_with = CrmRetryableError("503 Service Unavailable", provider="local",
                                               http_status=503)
    world.deliver(events[-1:])
    outcomes = []
    for _ in range(3):
        stats = world.components.worker.run_once()
        outcomes.append((stats.retried, stats.dead))
        wclock.advance(3600)
    assert outcomes == [(1, 0), (1, 0), (0, 1)]
    assert (job_row(world).state, job_row(world).attempts) == (JobState.DEAD, 3)


def test_a_lost_race_runs_the_event_again_at_once(world: World) -> None:
    referral_id, events = qualified_event(world)
    worker = world.components.worker
    handle, races = worker.handle, []

    def racing(event: ChangeEvent) -> object:
        if len(races) < 2:  # another worker saved the referral first, twice
            races.append(event.event_id)
            raise ConcurrentUpdate(f"referral {referral_id} changed meanwhile")
        return handle(event)

    worker.handle = racing
    world.deliver(events[-1:])
    stats = worker.run_once()
    assert (stats.processed, stats.retried, len(races)) == (1, 0, 2)
    assert (job_row(world).state, job_row(world).attempts) == (JobState.DONE, 1)
    stored = world.components.store.referrals.get(referral_id)
    assert stored is not None and stored.status.value == "qualified"


def test_a_referral_that_keeps_changing_falls_back_to_backoff(world: World) -> None:
    _, events = qualified_event(world)
    worker = world.components.worker

    def always_racing(event: ChangeEvent) -> object:
        raise ConcurrentUpdate("changed meanwhile")

    worker.handle = always_racing
    world.deliver(events[-1:])
    assert worker.run_once().retried == 1
    assert "ConcurrentUpdate" in job_row(world).last_error


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_events_lists_dead_letters_and_replay_finishes_them(
        world: World, url: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    referral_id, events = qualified_event(world)
    world.faulty.fail_with = CrmPermanentError("UNABLE_TO_LOCK_ROW: gave up", provider="local")
    world.deliver(events)
    world.components.worker.drain()
    settings = world.components.settings
    monkeypatch.setenv("REFERRAL_SYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REFERRAL_SYNC_LOCAL_CRM_URL", settings.local_crm_url)
    monkeypatch.setenv("REFERRAL_SYNC_QUEUE_URL", f"sqlite:///{tmp_path}/queue.db")
    monkeypatch.setenv("REFERRAL_SYNC_SECRET_KEY", "test-secret")
    monkeypatch.setenv("COLUMNS", "200")  # one table row per dead letter
    monkeypatch.chdir(str(tmp_path))
    runner = CliRunner()
    listed = runner.invoke(cli, ["events"])
    assert listed.exit_code == 0, listed.output
    assert "dead 2" in listed.output and "UNABLE_TO_LOCK_ROW" in listed.output
    replayed = runner.invoke(cli, ["events", "replay"])
    assert replayed.exit_code == 0, replayed.output
    assert "requeued 2 job(s)" in replayed.output and "processed 2" in replayed.output
    assert "dead 0" in runner.invoke(cli, ["events"]).output
    stored = world.components.store.referrals.get(referral_id)
    assert stored is not None and stored.status.value == "qualified"


def test_an_echo_of_our_own_write_changes_nothing(world: World) -> None:
    referral_id, events = qualified_event(world)
    world.deliver(events)
    world.components.worker.drain()
    store = world.components.store
    before = (len(store.outbox.messages()), len(store.ledger.entries()), _crm_tasks(world))
    # Our status write lands on the lead; the CRM tells us about it like any other change.
    echo = ChangeEvent(provider="local", event_id="echo-1", object_type=CrmObject.LEAD,
                       record_id=events[-1].record_id, referral_id=referral_id,
                       occurred_at=world.components.clock(),
                       fields={"referral_status": "qualified", "reward_status": "qualified"})
    world.faulty.calls = 0
    world.deliver([echo])
    assert world.components.worker.drain().processed == 1
    assert (len(store.outbox.messages()), len(store.ledger.entries()), _crm_tasks(world)) == before
    assert world.faulty.calls == 1  # re-read the record, wrote nothing


def test_an_event_marked_as_noop_is_stored_and_not_processed(world: World) -> None:
    ignored = ChangeEvent(provider="hubspot", event_id="hs-9", object_type=CrmObject.CONTACT,
                          record_id="901", occurred_at=world.components.clock(),
                          noop_reason="echo of our own write (sourceId = our app)")
    world.deliver([ignored])
    world.faulty.calls = 0
    assert world.components.worker.drain().processed == 1
    assert world.faulty.calls == 0


def _crm_tasks(world: World) -> int:
    with world.local.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.tasks)).scalar_one())
