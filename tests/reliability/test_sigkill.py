"""SIGKILL a real ``referral-sync worker`` in the middle of a job; after a restart the job
completes exactly once: one reward per milestone, one CRM record per key, one notice each.
Runs on the embedded default (SQLite store and queue) and on PostgreSQL + Redis."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa

from referral_sync.clock import utc_now
from referral_sync.local import tables as t
from referral_sync.program.loader import LoadedProgram, load_program
from referral_sync.store import JobState
from referral_sync.store.tables import jobs
from tests.reliability.processes import environment, processes, wait_for
from tests.reliability.world import (
    World,
    assert_no_double_effect,
    audit,
    build_world,
    soak_program_text,
)
from tests.store.backends import redis_queue_url, store_url

pytestmark = pytest.mark.slow


@pytest.fixture(params=[
    pytest.param(("sqlite", "sqlite"), id="sqlite"),
    pytest.param(("postgres", "redis"), id="postgres-redis",
                 marks=[pytest.mark.postgres, pytest.mark.redis]),
])
def real_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[World, Path]]:
    store_backend, queue_backend = request.param
    with ExitStack() as stack:
        url = stack.enter_context(store_url(store_backend, tmp_path))
        queue = (stack.enter_context(redis_queue_url()) if queue_backend == "redis"
                 else f"sqlite:///{tmp_path}/queue.db")
        program = tmp_path / "referral-sync.yaml"
        world = build_world(url, tmp_path, utc_now, queue_url=queue,
                            program=_program_file(program))
        stack.callback(world.local.engine.dispose)
        stack.callback(world.components.close)
        yield world, program


def _program_file(path: Path) -> LoadedProgram:
    """The soak program, written where the child processes read it too."""
    path.write_text(soak_program_text(), "utf-8")
    return load_program(path)


def job_state(world: World, job_id: int) -> tuple[str, int, str | None]:
    with world.components.store.engine.connect() as conn:
        row = conn.execute(sa.select(jobs.c.state, jobs.c.attempts, jobs.c.lease_owner)
                           .where(jobs.c.id == job_id)).one()
    return row.state, row.attempts, row.lease_owner


def test_a_job_killed_mid_way_completes_exactly_once_after_restart(
        real_world: tuple[World, Path], tmp_path: Path) -> None:
    world, program = real_world
    env = environment(world.components.settings, program,
                      REFERRAL_SYNC_WORKER__RECONCILE_SECONDS="3600")
    crm_file = world.components.settings.local_crm_url.removeprefix("sqlite:///")
    with processes(tmp_path) as procs:
        doomed = procs.start("worker-1", ["worker"], env)
        wait_for(lambda: "consuming" in procs.output("worker-1"), seconds=30,
                 what="the first worker to start", on_timeout=lambda: procs.output("worker-1"))
        time.sleep(1.0)  # its start-up sweeps are done; the next reconcile is an hour away
        referral_id = world.submit()
        assert referral_id
        for _ in range(3):  # qualified, converted, closed won: one event walks all three
            assert world.next_step(referral_id)
        won = world.changes()[-1:]
        # Hold the CRM's write lock: the worker leases the job, then blocks on its first
        # CRM call, in the middle of the job.
        lock = sqlite3.connect(crm_file, isolation_level=None, timeout=30)
        lock.execute("BEGIN IMMEDIATE")
        (job_id,) = world.components.receive_events("local", won, b"").job_ids
        wait_for(lambda: job_state(world, job_id)[0] == JobState.LEASED, seconds=30,
                 what="the first worker to lease the job",
                 on_timeout=lambda: procs.output("worker-1"))
        time.sleep(0.3)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        lock.execute("ROLLBACK")
        lock.close()
        state, attempts, owner = job_state(world, job_id)
        assert (state, attempts) == (JobState.LEASED, 1) and owner and owner.endswith(
            f":{doomed.pid}")
        procs.start("worker-2", ["worker"], env)
        wait_for(lambda: job_state(world, job_id)[0] == JobState.DONE, seconds=60,
                 what="the restarted worker to finish the job",
                 on_timeout=lambda: procs.output("worker-2"))
    assert job_state(world, job_id)[1] == 2  # the abandoned attempt, then the one that finished
    store = world.components.store
    assert [e.milestone.value for e in store.ledger.entries()] == ["qualified", "closed_won"]
    assert sorted(m.template for m in store.outbox.messages(referral_id=referral_id)) == [
        "closed_won", "qualified", "submitted"]
    with world.local.engine.connect() as conn:
        rewards = conn.execute(sa.select(t.rewards.c.milestone)).scalars().all()
    assert sorted(rewards) == ["closed_won", "qualified"]
    assert_no_double_effect(audit(world))
