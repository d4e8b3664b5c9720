"""The huey queue carries job ids only; the job rows stay the truth. A consumer processes what
``receive_events`` announces; the sweeper re-announces what a lost message, a queue outage
or a retry left behind; periodic tasks run once per interval however many nodes tick."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from referral_sync.queue import JobQueue, Ticker
from referral_sync.store import JobState
from tests.reliability.world import Clock, World, build_world
from tests.store.backends import redis_queue_url


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/queue.db"
        return
    with redis_queue_url() as url:
        yield url


def lifecycle_events(world: World) -> int:
    referral_id = world.submit()
    assert referral_id
    for _ in range(3):  # qualified, converted, closed won
        world.next_step(referral_id)
    changes = world.changes()
    world.deliver(changes[::-1])  # newest first
    world.deliver(changes)  # and again
    return len(changes)


def wait_until(check: object, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_consumer_processes_what_receive_events_announces(queue_url: str,
                                                            tmp_path: Path) -> None:
    clock = Clock()
    world = build_world(f"sqlite:///{tmp_path}/store.db", tmp_path, clock, queue_url=queue_url)
    consumer = world.components.consumer(signals=False, threads=2)
    consumer.start()
    try:
        distinct = lifecycle_events(world)
        store = world.components.store
        wait_until(lambda: store.inbox.counts()[JobState.DONE] == distinct)
        assert store.inbox.counts()["events"] == distinct
        assert [e.milestone.value for e in store.ledger.entries()] == ["qualified", "closed_won"]
    finally:
        consumer.stop(graceful=True)
        world.components.close()


def test_a_lost_message_is_announced_again_by_the_sweeper(tmp_path: Path) -> None:
    clock = Clock()
    world = build_world(f"sqlite:///{tmp_path}/store.db", tmp_path, clock)
    queue, tasks = world.components.queue, world.components.tasks
    assert queue is not None and tasks is not None
    distinct = lifecycle_events(world)
    assert queue.settle()
    queue.flush()  # the broker lost every message
    assert tasks.sweep() == []  # announced a moment ago: not presumed lost yet
    clock.advance(61)
    assert len(tasks.sweep()) == distinct
    while (task := queue.huey.dequeue()) is not None:
        queue.huey.execute(task)
    assert world.components.store.inbox.counts()[JobState.DONE] == distinct


def test_a_queue_outage_costs_latency_not_events(tmp_path: Path) -> None:
    clock = Clock()
    world = build_world(f"sqlite:///{tmp_path}/store.db", tmp_path, clock,
                        queue_url="redis://127.0.0.1:9/0")  # nothing listens there
    referral_id = world.submit()
    assert referral_id and world.next_step(referral_id)
    result = world.components.receive_events("local", world.changes(), b"")
    assert result.stored == 2
    world.components.queue = JobQueue.from_url("memory://")
    assert world.components.tasks is not None
    world.components.tasks.queue = world.components.queue
    world.components.queue.bind(world.components.tasks)
    clock.advance(61)
    assert world.components.tasks.sweep() == result.job_ids


def test_each_periodic_task_runs_once_per_interval_across_nodes(tmp_path: Path) -> None:
    clock = Clock()
    world = build_world(f"sqlite:///{tmp_path}/store.db", tmp_path, clock)
    store = world.components.store
    every = {"sweep": 5.0, "reconcile": 5.0, "sla": 60.0}
    queues = [JobQueue.from_url("memory://") for _ in range(3)]
    tickers = [Ticker(store, q, every, clock) for q in queues]

    def tick_all() -> list[str]:
        return sorted(name for ticker in tickers for name in ticker.tick())

    assert tick_all() == ["reconcile", "sla", "sweep"]
    assert tick_all() == []
    clock.advance(5)
    assert tick_all() == ["reconcile", "sweep"]
    assert sum(q.depth() for q in queues) == 5
