"""A Hypothesis state machine over the whole event path: deliver, redeliver and reorder
webhooks, let the AE move deals, fail the CRM, kill the worker mid-job (an abandoned lease),
sweep, reconcile and let time pass. After every step: at most one reward per (referral,
milestone), no duplicate CRM record, one inbox row per distinct event and no event lost; at
the end, once the CRM heals and time passes, every event is processed and every referral
shows its CRM status with exactly the rewards its milestones earn."""

from __future__ import annotations

import contextlib
import tempfile
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from referral_sync.errors import ReferralSyncError
from tests.reliability.faults import WorkerKilled
from tests.reliability.world import (
    Clock,
    assert_no_double_effect,
    assert_settled_consistently,
    audit,
    build_world,
)
from tests.store.backends import store_url

ACTIONS = ["qualify", "convert", "win", "lose", "reopen"]


class EventPathMachine(RuleBasedStateMachine):
    """One world per example; ``backend`` is set by the subclasses below."""

    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        tmp = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
        url = self.stack.enter_context(store_url(self.backend, tmp))
        self.clock = Clock()
        self.world = build_world(url, tmp, self.clock)
        self.stack.callback(self.world.local.engine.dispose)
        self.stack.callback(self.world.components.close)
        self.referrals: list[str] = []
        self.delivered: set[tuple[str, str]] = set()

    @initialize()
    def two_referrals(self) -> None:
        for _ in range(2):
            self.submit()

    @rule()
    def submit(self) -> None:
        referral_id = self.world.submit()
        if referral_id:
            self.referrals.append(referral_id)

    @rule(index=st.integers(0, 50), action=st.sampled_from(ACTIONS))
    def ae_does_anything(self, index: int, action: str) -> None:
        if self.referrals:
            self.world.act(self.referrals[index % len(self.referrals)], action)

    @rule(index=st.integers(0, 50), ending=st.sampled_from(["win", "win", "lose"]))
    def ae_moves_a_deal_on(self, index: int, ending: str) -> None:
        if self.referrals:
            self.world.next_step(self.referrals[index % len(self.referrals)], ending)

    @rule(data=st.data())
    def webhooks_arrive(self, data: st.DataObject) -> None:
        """Some of the CRM's changes arrive, shuffled, some again, some never."""
        changes = self.world.changes()
        if not changes:
            return
        batch = data.draw(st.lists(st.sampled_from(changes), max_size=8), label="batch")
        self.world.deliver(batch)
        self.delivered |= {(e.provider, e.event_id) for e in batch}

    @rule(rate=st.sampled_from([0.0, 0.3, 0.9]))
    def crm_health_changes(self, rate: float) -> None:
        self.world.faulty.rate = rate

    @rule(limit=st.integers(1, 5))
    def worker_runs(self, limit: int) -> None:
        self.world.components.worker.run_once(limit=limit)

    @rule(after_calls=st.integers(0, 6))
    def worker_killed_mid_job(self, after_calls: int) -> None:
        self.world.faulty.kill_after = after_calls
        try:
            self.world.components.worker.run_once(limit=1)
        except WorkerKilled:
            pass  # the lease stays with the dead worker until it expires
        finally:
            self.world.faulty.kill_after = None

    @rule(seconds=st.sampled_from([1, 30, 200]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule()
    def sweeper_runs(self) -> None:
        self.world.components.worker.sweep()

    @rule()
    def reconcile_runs(self) -> None:
        with contextlib.suppress(ReferralSyncError):  # the next sweep tries again
            self.world.components.service.reconcile()

    @invariant()
    def nothing_doubled_nothing_lost(self) -> None:
        found = audit(self.world)
        assert_no_double_effect(found)
        crm_events = {(e.provider, e.event_id) for e in self.world.changes()}
        from_crm = {key for key in found.inbox_keys if key[0] != "intake"}
        assert self.delivered <= from_crm, "a delivered event is missing from the inbox"
        assert from_crm <= crm_events, "the inbox holds an event the CRM never sent"

    def teardown(self) -> None:
        try:
            self.world.settle(self.clock)
            assert_no_double_effect(audit(self.world))
            assert_settled_consistently(self.world)
        finally:
            self.stack.close()


class PostgresEventPathMachine(EventPathMachine):
    backend = "postgres"


_SETTINGS = settings(max_examples=20, stateful_step_count=40, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
def test_event_path_on_sqlite() -> None:
    EventPathMachine.TestCase.settings = _SETTINGS
    EventPathMachine.TestCase().runTest()


@pytest.mark.slow
@pytest.mark.postgres
def test_event_path_on_postgres() -> None:
    with store_url("postgres", Path(tempfile.gettempdir())):
        pass  # skips, with the reason, when PostgreSQL is not configured
    PostgresEventPathMachine.TestCase.settings = settings(_SETTINGS, max_examples=12)
    PostgresEventPathMachine.TestCase().runTest()
