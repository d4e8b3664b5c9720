"""Keys that make effects happen once: the reward ledger, the outbox, and periodic-task
claims; plus the routing counters' lock, which must serialise read-decide-write across
threads (and so across nodes) on both backends."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from referral_sync.errors import ConcurrentUpdate
from referral_sync.models import (
    Milestone,
    Referee,
    Referral,
    ReferralStatus,
    Referrer,
    RewardEntry,
)
from referral_sync.store import OutboxMessage, Store

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def reward(referral_id: str, milestone: Milestone, amount: int = 200) -> RewardEntry:
    return RewardEntry(referral_id=referral_id, milestone=milestone, referrer_email="r@x.com",
                       program="default", amount=Decimal(amount), earned_at=T0)


def test_one_reward_per_referral_and_milestone_even_under_concurrency(store: Store) -> None:
    with ThreadPoolExecutor(4) as pool:
        won = list(pool.map(lambda n: store.ledger.record(
            reward("ref_1", Milestone.CLOSED_WON, 1000 + n), T0), range(8)))
    assert won.count(True) == 1
    assert store.ledger.record(reward("ref_1", Milestone.QUALIFIED), T0)
    assert [(e.milestone, e.referral_id) for e in store.ledger.entries()] == [
        (Milestone.CLOSED_WON, "ref_1"), (Milestone.QUALIFIED, "ref_1")]


def test_an_outbox_key_is_queued_once(store: Store) -> None:
    message = OutboxMessage(key="ref_1:qualified:1", referral_id="ref_1", channel="email",
                            template="qualified", locale="en", recipient="r@x.com",
                            subject="s", body="b")
    assert store.outbox.add(message, T0)
    assert not store.outbox.add(message, T0)
    assert len(store.outbox.messages()) == 1


def test_round_robin_reads_never_see_the_same_pointer_twice(store: Store) -> None:
    """Each thread reads the pointer, "decides", then bumps it, as the router does. Without
    the lock two threads would read the same value and hand out the same turn."""
    seen: list[int] = []
    guard = threading.Lock()

    def take_turns(_: int) -> None:
        for _turn in range(10):
            with store.counters.locked() as counters:
                pointer = counters.read("total").get("pool:rr", 0)
                threading.Event().wait(0.001)  # widen the race window
                counters.increment("total", {"pool:rr": 1, "owner:a": pointer % 2})
            with guard:
                seen.append(pointer)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(take_turns, range(4)))
    assert sorted(seen) == list(range(40))
    with store.counters.locked() as counters:
        assert counters.read("total") == {"pool:rr": 40, "owner:a": 20}


def test_a_periodic_task_is_claimed_by_one_node_per_interval(store: Store) -> None:
    with ThreadPoolExecutor(4) as pool:
        first = list(pool.map(lambda _: store.schedules.claim("sweep", T0, 5), range(8)))
    assert first.count(True) == 1
    assert not store.schedules.claim("sweep", T0 + timedelta(seconds=4), 5)
    assert store.schedules.claim("sweep", T0 + timedelta(seconds=5), 5)
    assert store.schedules.last_run("sweep") == T0 + timedelta(seconds=5)


def test_a_referral_saved_with_an_expected_status_never_overwrites_a_newer_one(
        store: Store) -> None:
    referral = Referral(
        id="ref_cas", submitted_at=T0, referrer=Referrer(email="r@x.com"),
        referee=Referee(first_name="A", last_name="B", email="a@b.com", company="B Inc"))
    store.referrals.save(referral, T0)
    newer = referral.model_copy(deep=True)
    newer.advance(ReferralStatus.DISQUALIFIED, T0, reason="worker B")
    stale = referral.model_copy(deep=True)
    stale.advance(ReferralStatus.QUALIFIED, T0, reason="worker A")
    store.referrals.save(newer, T0, expected=ReferralStatus.SUBMITTED)

    with pytest.raises(ConcurrentUpdate):
        store.referrals.save(stale, T0, expected=ReferralStatus.SUBMITTED)

    stored = store.referrals.get("ref_cas")
    assert stored is not None and stored.status is ReferralStatus.DISQUALIFIED
