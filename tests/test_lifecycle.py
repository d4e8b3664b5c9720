"""A referral's life through CRM changes: statuses, rewards once per milestone, referrer
notices, redelivered and out-of-order events, clawback, and a CRM outage at intake."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from referral_sync.app import Components, build_components
from referral_sync.crm import CrmRecordRef, CrmTask
from referral_sync.errors import CrmRetryableError
from referral_sync.local import tables as t
from referral_sync.local.actions import CrmUser
from referral_sync.local.crm import LocalCrm
from referral_sync.local.seed import seed
from referral_sync.models import (
    IntroStrength,
    Milestone,
    Referee,
    Referral,
    ReferralStatus,
    RewardState,
    RoutingDecision,
)
from referral_sync.service import Submission
from referral_sync.settings import Settings
from tests.conftest import FakeClock, SeededPeople


def submit(components: Components, referrer: str, n: int = 0) -> Referral:
    result = components.service.submit(Submission(
        referrer_email=referrer, intro_strength=IntroStrength.STRONG, referee=Referee(
            first_name="Hana", last_name=f"Yusof{n}", email=f"hana{n}@kelp{n}-robotics.com",
            company=f"Kelp Robotics {n}", employees=1500)))
    assert result.record is not None
    return result.referral


def sync(components: Components) -> None:
    components.service.reconcile()
    components.worker.drain()


def status_of(components: Components, referral: Referral) -> ReferralStatus:
    stored = components.store.referrals.get(referral.id)
    assert stored is not None
    return stored.status


def templates(components: Components, referral: Referral) -> list[str]:
    return [m.template for m in components.store.outbox.messages(referral_id=referral.id)]


def test_won_referral_earns_one_reward_per_milestone(components: Components,
                                                     people: SeededPeople) -> None:
    ae = CrmUser(components.crm)  # type: ignore[arg-type]
    referral = submit(components, people.good_referrer)
    assert referral.crm_record_id
    ae.qualify(referral.crm_record_id)
    sync(components)
    assert status_of(components, referral) is ReferralStatus.QUALIFIED
    opp = ae.convert(referral.crm_record_id, Decimal(30000))
    ae.set_stage(opp, "Closed Won")
    sync(components)
    assert status_of(components, referral) is ReferralStatus.CLOSED_WON
    entries = components.store.ledger.entries(referral_id=referral.id)
    assert [(e.milestone, e.amount, e.tier) for e in entries] == [
        (Milestone.QUALIFIED, Decimal(200), "Bronze"),
        (Milestone.CLOSED_WON, Decimal(1000), "Bronze"),
    ]
    assert all(e.crm_id for e in entries)
    assert templates(components, referral) == ["submitted", "qualified", "closed_won"]
    assert isinstance(components.crm, LocalCrm)
    with components.crm.engine.connect() as conn:
        rewards = list(conn.execute(sa.select(t.rewards)))
        lead = conn.execute(sa.select(t.leads)).one()
    assert sorted(r.key for r in rewards) == [f"{referral.id}:closed_won",
                                             f"{referral.id}:qualified"]
    assert "closed_won: earned" in lead.reward_status


def test_redelivered_and_replayed_events_change_nothing(components: Components,
                                                        people: SeededPeople) -> None:
    ae = CrmUser(components.crm)  # type: ignore[arg-type]
    referral = submit(components, people.good_referrer)
    assert referral.crm_record_id
    ae.qualify(referral.crm_record_id)
    opp = ae.convert(referral.crm_record_id, Decimal(10000))
    ae.set_stage(opp, "Closed Won")
    events = list(components.crm.list_changes(datetime(2000, 1, 1).astimezone()))
    # Newest first: the closed-won event arrives before the qualification.
    for batch in (list(reversed(events)), events, events):
        components.service.receive(batch)
        components.worker.drain()
    assert status_of(components, referral) is ReferralStatus.CLOSED_WON
    assert len(components.store.ledger.entries(referral_id=referral.id)) == 2
    assert templates(components, referral) == ["submitted", "qualified", "closed_won"]
    counts = components.store.inbox.counts()
    assert counts["events"] == len(events) and counts["dead"] == 0


def test_disqualified_referrer_is_told_the_reason(components: Components,
                                                  people: SeededPeople) -> None:
    ae = CrmUser(components.crm)  # type: ignore[arg-type]
    referral = submit(components, people.good_referrer)
    assert referral.crm_record_id
    ae.disqualify(referral.crm_record_id, "already evaluating a competitor")
    sync(components)
    assert status_of(components, referral) is ReferralStatus.DISQUALIFIED
    [notice] = [m for m in components.store.outbox.messages(referral_id=referral.id)
                if m.template == "disqualified"]
    assert "already evaluating a competitor" in notice.body
    assert components.store.ledger.entries(referral_id=referral.id) == []


def test_lost_after_won_within_hold_claws_back(components: Components,
                                               people: SeededPeople, clock: FakeClock) -> None:
    ae = CrmUser(components.crm)  # type: ignore[arg-type]
    referral = submit(components, people.good_referrer)
    assert referral.crm_record_id
    ae.qualify(referral.crm_record_id)
    opp = ae.convert(referral.crm_record_id, Decimal(10000))
    ae.set_stage(opp, "Closed Won")
    sync(components)
    clock.advance(days=10)
    ae.set_stage(opp, "Closed Lost")
    sync(components)
    entries = {e.milestone: e for e in components.store.ledger.entries(referral_id=referral.id)}
    assert entries[Milestone.CLOSED_WON].state is RewardState.REVERSED
    assert entries[Milestone.QUALIFIED].state is RewardState.EARNED
    [lost] = [m for m in components.store.outbox.messages(referral_id=referral.id)
              if m.template == "closed_lost"]
    assert "reversed" in lost.body


def test_tier_rises_with_qualified_count(components: Components, people: SeededPeople) -> None:
    ae = CrmUser(components.crm)  # type: ignore[arg-type]
    amounts = []
    for n in range(3):
        referral = submit(components, people.good_referrer, n)
        assert referral.crm_record_id
        ae.qualify(referral.crm_record_id)
        sync(components)
        [entry] = components.store.ledger.entries(referral_id=referral.id)
        amounts.append((entry.tier, entry.amount))
    assert amounts == [("Bronze", 200), ("Bronze", 200), ("Silver", 250)]


class FlakyCrm:
    """The local CRM, failing ``create_referral`` a set number of times (CRM outage)."""

    def __init__(self, inner: LocalCrm, failures: int) -> None:
        self._inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def create_referral(self, referral: Referral, decision: RoutingDecision, *,
                        tasks: Sequence[CrmTask] = ()) -> CrmRecordRef:
        if self.failures:
            self.failures -= 1
            raise CrmRetryableError("503 Service Unavailable", provider="local", retry_after=0)
        return self._inner.create_referral(referral, decision, tasks=tasks)


@pytest.fixture
def flaky(settings: Settings, clock: FakeClock) -> Iterator[tuple[Components, FlakyCrm]]:
    inner = LocalCrm.from_url(settings.local_crm_url,
                              build_components(settings, clock=clock).program.config.crm, clock)
    seed(inner, now=clock())
    crm = FlakyCrm(inner, failures=2)
    built = build_components(settings, clock=clock, crm=crm)  # type: ignore[arg-type]
    yield built, crm
    built.store.close()


def test_crm_outage_at_intake_is_finished_by_the_worker(
        flaky: tuple[Components, FlakyCrm], clock: FakeClock) -> None:
    components, crm = flaky
    with crm._inner.engine.connect() as conn:
        referrer = conn.execute(
            sa.select(t.contacts.c.email)
            .join(t.accounts, t.accounts.c.id == t.contacts.c.account_id)
            .where(t.accounts.c.type == "Customer - Direct", t.accounts.c.status.is_(None))
            .order_by(t.accounts.c.customer_since)).first()
    assert referrer is not None
    result = components.service.submit(Submission(
        referrer_email=referrer.email, referee=Referee(
            first_name="Ana", last_name="Lim", email="ana@tiger-freight.com",
            company="Tiger Freight")))
    assert result.record is None  # accepted, CRM write deferred: nothing lost
    stats = components.worker.drain()
    assert stats.retried == 1  # second failure; retried after backoff
    clock.advance(minutes=5)
    components.worker.drain()
    stored = components.store.referrals.get(result.referral.id)
    assert stored is not None and stored.crm_record_id
    with crm._inner.engine.connect() as conn:
        assert len(list(conn.execute(sa.select(t.leads)))) == 1
    assert templates(components, stored) == ["submitted"]


def test_owner_open_count_moves_once_even_when_the_event_is_retried(
        components: Components, people: SeededPeople, clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ae = CrmUser(components.crm)  # type: ignore[arg-type]
    referral = submit(components, people.good_referrer)
    assert referral.crm_record_id and referral.owner_id
    owner = referral.owner_id

    def open_count() -> int:
        with components.store.counters.locked() as counters:
            return counters.read("open").get(owner, 0)

    assert open_count() == 1
    real_apply, failures = components.crm.apply_changes, [1]

    def apply_once_failing(*args: object, **kwargs: object) -> object:
        if failures:
            failures.pop()
            raise CrmRetryableError("503 Service Unavailable", provider="local", retry_after=0)
        return real_apply(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(components.crm, "apply_changes", apply_once_failing)
    ae.disqualify(referral.crm_record_id, "no budget this year")
    sync(components)
    clock.advance(minutes=5)
    components.worker.drain()

    assert not failures and status_of(components, referral) is ReferralStatus.DISQUALIFIED
    assert open_count() == 0
    ae.qualify(referral.crm_record_id)
    sync(components)
    assert status_of(components, referral) is ReferralStatus.QUALIFIED
    assert open_count() == 1


def test_an_event_finishing_after_another_worker_moved_the_referral_runs_again(
        components: Components, people: SeededPeople, clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ae = CrmUser(components.crm)  # type: ignore[arg-type]
    referral = submit(components, people.good_referrer)
    assert referral.crm_record_id
    real_apply = components.crm.apply_changes

    def apply_while_another_worker_saves(*args: object, **kwargs: object) -> object:
        other = components.store.referrals.get(referral.id)
        assert other is not None
        if other.status is ReferralStatus.SUBMITTED:  # worker B gets there first
            other.advance(ReferralStatus.DISQUALIFIED, clock(), reason="worker B")
            components.store.referrals.save(other, clock())
        return real_apply(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(components.crm, "apply_changes", apply_while_another_worker_saves)
    ae.disqualify(referral.crm_record_id, "no budget this year")
    components.service.reconcile()
    stats = components.worker.drain()

    # Worker A's stale save was refused, not written, and A ran the event again at once.
    assert stats.processed and (stats.retried, stats.dead) == (0, 0)
    stored = components.store.referrals.get(referral.id)
    assert stored is not None and stored.status is ReferralStatus.DISQUALIFIED
    assert [c.reason for c in stored.history] == ["worker B"]
    assert templates(components, referral) == ["submitted", "disqualified"]
