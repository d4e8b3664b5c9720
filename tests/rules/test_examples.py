"""The shipped example policies load, route and reward as their comments say."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from referral_sync.crm import ReferrerContext
from referral_sync.models import IntroStrength, Milestone, Referral, Referrer, RewardType
from referral_sync.program.loader import LoadedProgram, load_program
from referral_sync.program.schema import Program
from referral_sync.rules import (
    IntakeFacts,
    IntakeOutcome,
    PolicyStamp,
    RewardFacts,
    RoutingFacts,
    RoutingState,
    evaluate_intake,
    rewards_for_milestone,
    route_referral,
)

from .conftest import NOW, make_referee, make_referrer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> LoadedProgram:
    return load_program(EXAMPLES / name)


def route(
    loaded: LoadedProgram,
    state: RoutingState | None = None,
    program: str | None = None,
    **facts: Any,
) -> Any:
    data: dict[str, Any] = {"referee": make_referee(), "referrer": make_referrer(), "now": NOW}
    data.update(facts)
    return route_referral(
        RoutingFacts(**data),
        loaded.config.program(program).routing,
        state or RoutingState(),
        PolicyStamp.of(loaded),
    )


def earn(
    loaded: LoadedProgram,
    program: Program,
    milestone: Milestone,
    now: datetime = NOW,
    deal: Decimal | None = None,
) -> Any:
    referral = Referral(
        id="r1",
        program=program.id,
        referrer=Referrer(email="a@customer-corp.com"),
        referee=make_referee(),
        submitted_at=now,
    )
    facts = RewardFacts(
        referral=referral,
        milestone=milestone,
        referrer_qualified_count=1,
        deal_amount=deal,
        now=now,
    )
    return rewards_for_milestone(facts, program, PolicyStamp.of(loaded))


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_loads_with_a_version_and_hash(name: str) -> None:
    loaded = load(name)
    assert loaded.version and len(loaded.content_hash) == 16


def test_enterprise_hybrid_routes_as_commented() -> None:
    policy = load("enterprise-hybrid.yaml")
    big = route(policy, referee=make_referee(country="US", employees=5000))
    assert (big.owner_id, big.strategy) == ("005AE", "referrer_ae")
    warm = route(
        policy,
        referee=make_referee(country="GB", employees=30),
        intro_strength=IntroStrength.STRONG,
    )
    assert (warm.owner_id, warm.first_action) == ("005AE", "call")
    csm = make_referrer(owner_active=False, account_team={"Customer Success Manager": "005CSM"})
    assert route(policy, referrer=csm, referee=make_referee(employees=2000)).owner_id == "005CSM"
    assert route(policy, referee=make_referee(country="AT", employees=450)).owner_id == "005JONAS"
    smb = route(policy, referee=make_referee(country="DE", employees=40))
    assert smb.pool == "emea_smb" and smb.owner_id in {"005LENA", "005TOBIAS"}
    assert route(policy, referee=make_referee(country="IE", employees=900)).owner_id == "005OLIVIA"
    assert route(policy, referee=make_referee(country="CA", employees=200)).owner_id == "005MARCUS"
    na = route(
        policy,
        state=RoutingState(open_counts={"005JAKE": 7, "005MIA": 3}),
        referee=make_referee(country="US", employees=15),
    )
    assert na.owner_id == "005MIA"
    assert route(policy, referee=make_referee(country="MY")).pool == "apac"
    other = route(policy, referee=make_referee(country="BR", employees=300))
    assert (other.owner_id, other.strategy) == ("queue:Enterprise Referrals", "fallback")
    account = make_referrer(owner_id="005ACCOUNT_OWNER")
    assert (
        route(policy, account_match=account, referee=make_referee(employees=5000)).owner_id
        == "005ACCOUNT_OWNER"
    )


def test_enterprise_hybrid_icp_and_dach_campaign() -> None:
    loaded = load("enterprise-hybrid.yaml")
    program = loaded.config.program()
    facts = IntakeFacts(
        referee=make_referee(employees=8),
        referrer=make_referrer(),
        referrer_email="ann@customer-corp.com",
        now=NOW,
    )
    decision = evaluate_intake(facts, program, loaded.config.crm, PolicyStamp.of(loaded))
    assert decision.outcome is IntakeOutcome.REVIEW and decision.review_reasons == ["outside_icp"]
    april = datetime(2026, 4, 15, tzinfo=UTC)
    assert earn(loaded, program, Milestone.QUALIFIED, april).entries[0].amount == Decimal("400.00")
    assert earn(loaded, program, Milestone.QUALIFIED).entries[0].amount == Decimal("200.00")


def test_referral_rep_pool_splits_two_one_one_and_respects_caps() -> None:
    loaded = load("referral-rep-pool.yaml")
    state, owners = RoutingState(), Counter[str]()
    for _ in range(100):
        decision = route(loaded, state)
        owners[decision.owner_id] += 1
        for key, inc in decision.counters.items():
            state.assigned[key] = state.assigned.get(key, 0) + inc
            state.period_counts[key] = state.period_counts.get(key, 0) + inc
    # 2:1:1 until the monthly caps (40/20/20) are reached, Priya (on leave) never
    assert owners == Counter(
        {"005AISHA": 40, "005BEN": 20, "005CHEN": 20, "queue:Referral Overflow": 20}
    )
    last = route(loaded, state)
    assert {s.detail for s in last.trace if s.outcome == "skip 005AISHA"} == {
        "at cap (40/40 this month)"
    }
    assert {s.detail for s in last.trace if s.outcome == "skip 005PRIYA"} == {"marked unavailable"}
    account = make_referrer(owner_id="005ACCOUNT_OWNER")
    assert route(loaded, account_match=account).owner_id == "005ACCOUNT_OWNER"


def test_referral_rep_pool_rewards_cash_at_qualification_doubled_in_march() -> None:
    loaded = load("referral-rep-pool.yaml")
    program = loaded.config.program()
    march = earn(loaded, program, Milestone.QUALIFIED).entries[0]  # NOW is 2 March 2026
    assert (march.amount, march.reward_type) == (Decimal("300.00"), RewardType.CASH)
    april = earn(loaded, program, Milestone.QUALIFIED, datetime(2026, 4, 2, tzinfo=UTC))
    assert april.entries[0].amount == Decimal("150.00")
    assert earn(loaded, program, Milestone.CLOSED_WON).entries == []


def test_partner_program_side_by_side_with_customer_program() -> None:
    loaded = load("partner-program.yaml")
    customer, partner = loaded.config.program(), loaded.config.program("partner")
    assert customer.id == "customer"
    assert earn(loaded, customer, Milestone.CLOSED_WON).entries[0].amount == Decimal("1000.00")
    assert earn(loaded, partner, Milestone.QUALIFIED).entries == []
    share = earn(loaded, partner, Milestone.CLOSED_WON, deal=Decimal("60000")).entries[0]
    assert (share.amount, share.reward_type) == (Decimal("12000.00"), RewardType.REVENUE_SHARE)
    assert share.requires_approval is True
    assert share.hold_until is not None and (share.hold_until - NOW).days == 60
    reseller = ReferrerContext(
        contact_id="003P",
        email="sam@reseller.example",
        account_type="Channel Partner / Reseller",
        is_paying_customer=False,
    )
    facts = IntakeFacts(
        referee=make_referee(), referrer=reseller, referrer_email=reseller.email, now=NOW
    )
    stamp = PolicyStamp.of(loaded)
    assert evaluate_intake(facts, partner, loaded.config.crm, stamp).outcome is (
        IntakeOutcome.ACCEPT
    )
    assert evaluate_intake(facts, customer, loaded.config.crm, stamp).code == "not_paying_customer"
    batch = facts.model_copy(update={"referrals_today": 24})
    assert evaluate_intake(batch, partner, loaded.config.crm, stamp).outcome is (
        IntakeOutcome.ACCEPT
    )
    ended = facts.model_copy(
        update={"referrer": reseller.model_copy(update={"account_status": "Terminated"})}
    )
    assert evaluate_intake(ended, partner, loaded.config.crm, stamp).code == "account_status"
    first = route(loaded, program="partner")
    assert first.owner_id == "005PM_SARA" and first.pool == "partner_managers"


def test_default_program_routes_and_rewards_as_its_comments_say(
    default_loaded: LoadedProgram,
) -> None:
    # hybrid: strategic (1000+ employees or strong intro) → referrer's AE; no territory table
    # in the default, so the rest goes to the fallback queue
    assert route(default_loaded, referee=make_referee(employees=1500)).owner_id == "005AE"
    rest = route(default_loaded)
    assert (rest.owner_id, rest.first_action) == ("queue:Referral Queue", "email")
    program = default_loaded.config.program()
    assert earn(default_loaded, program, Milestone.QUALIFIED).entries[0].amount == Decimal(200)
