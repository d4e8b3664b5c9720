"""Rewards: timing, tiers, revenue share, campaigns, annual cap, approval, hold, clawback."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from referral_sync.models import (
    Milestone,
    Referral,
    ReferralStatus,
    Referrer,
    RewardState,
    RewardType,
    StatusChange,
)
from referral_sync.program.schema import Program
from referral_sync.rules import RewardFacts, clawback, rewards_for_milestone

from .conftest import NOW, STAMP, make_program, make_referee


def referral(**overrides: Any) -> Referral:
    data: dict[str, Any] = {
        "id": "ref-1",
        "referrer": Referrer(email="ann@customer-corp.com", account_name="Customer Corp"),
        "referee": make_referee(),
        "submitted_at": NOW - timedelta(days=20),
    }
    data.update(overrides)
    return Referral(**data)


def earn(program: Program, milestone: Milestone = Milestone.QUALIFIED, **overrides: Any) -> Any:
    data: dict[str, Any] = {
        "referral": referral(),
        "milestone": milestone,
        "referrer_qualified_count": 1,
        "now": NOW,
    }
    data.update(overrides)
    return rewards_for_milestone(RewardFacts(**data), program, STAMP)


@pytest.mark.parametrize(
    ("count", "tier", "qualified", "close"),
    [
        (1, "Bronze", "200.00", "1000.00"),
        (2, "Bronze", "200.00", "1000.00"),
        (3, "Silver", "250.00", "1500.00"),
        (5, "Silver", "250.00", "1500.00"),
        (6, "Gold", "300.00", "2000.00"),
        (40, "Gold", "300.00", "2000.00"),
    ],
)
def test_default_tiers_by_qualified_count(
    default_program: Program, count: int, tier: str, qualified: str, close: str
) -> None:
    q = earn(default_program, referrer_qualified_count=count).entries[0]
    c = earn(default_program, Milestone.CLOSED_WON, referrer_qualified_count=count).entries[0]
    assert (q.tier, q.amount, c.tier, c.amount) == (tier, Decimal(qualified), tier, Decimal(close))
    assert q.key == "ref-1:qualified" and c.key == "ref-1:closed_won"
    assert q.reward_type is RewardType.ACCOUNT_CREDIT and q.currency == "USD"


@pytest.mark.parametrize(
    ("timing", "qualified", "closed"),
    [("at_qualification", 1, 0), ("at_close", 0, 1), ("tiered", 1, 1)],
)
def test_timing_decides_which_milestones_pay(timing: str, qualified: int, closed: int) -> None:
    program = make_program(rewards={"timing": timing})
    assert len(earn(program).entries) == qualified
    assert len(earn(program, Milestone.CLOSED_WON).entries) == closed
    if not qualified:
        assert earn(program).trace[-1].rule == "rewards.timing"


def test_close_reward_is_held_and_big_rewards_need_approval(default_program: Program) -> None:
    gold = earn(default_program, Milestone.CLOSED_WON, referrer_qualified_count=7).entries[0]
    assert gold.hold_until == NOW + timedelta(days=90)
    assert gold.requires_approval is True  # 2000 > 1500
    bronze = earn(default_program, Milestone.CLOSED_WON).entries[0]
    assert bronze.requires_approval is False
    assert earn(default_program).entries[0].hold_until is None


def test_annual_cap_trims_then_stops_with_a_trace_line(default_program: Program) -> None:
    trimmed = earn(default_program, Milestone.CLOSED_WON, referrer_paid_this_year=Decimal(9500))
    assert trimmed.entries[0].amount == Decimal("500.00")
    full = earn(default_program, referrer_paid_this_year=Decimal(10000))
    assert full.entries == []
    assert [s.outcome for s in full.trace if s.rule == "rewards.annual_cap"] == ["trimmed to 0"]


def test_outside_the_attribution_window_earns_nothing(default_program: Program) -> None:
    late = earn(default_program, referral=referral(submitted_at=NOW - timedelta(days=120)))
    assert late.entries == []
    step = next(s for s in late.trace if s.rule == "validity.attribution_window_days")
    assert step.outcome == "outside"
    # closed-won counts when qualification happened inside the window
    history = [StatusChange(status=ReferralStatus.QUALIFIED, at=NOW - timedelta(days=100))]
    won = referral(submitted_at=NOW - timedelta(days=120), history=history)
    assert earn(default_program, Milestone.CLOSED_WON, referral=won).entries


def test_partner_program_pays_revenue_share_at_close() -> None:
    partner = make_program(
        kind="partner", rewards={"timing": "at_close", "revenue_share_percent": 20}
    )
    decision = earn(partner, Milestone.CLOSED_WON, deal_amount=Decimal("48000"))
    entry = decision.entries[0]
    assert entry.amount == Decimal("9600.00") and entry.reward_type is RewardType.REVENUE_SHARE
    assert entry.tier is None
    assert earn(partner, Milestone.CLOSED_WON, deal_amount=None).entries == []


CAMPAIGNS: list[dict[str, Any]] = [
    {"name": "March double", "starts": "2026-03-01", "ends": "2026-03-31", "multiplier": 2},
    {
        "name": "Fintech bonus",
        "bonus": 300,
        "when": {"field": "referee.industry", "op": "eq", "value": "Fintech"},
    },
    {"name": "Next year", "starts": "2027-01-01", "multiplier": 5},
]


def test_campaigns_best_or_stack() -> None:
    fintech = referral(referee=make_referee(industry="Fintech"))
    best = make_program(rewards={"campaigns": CAMPAIGNS, "annual_cap": None})
    assert earn(best, referral=fintech).entries[0].amount == Decimal("500.00")  # 400 vs 200+300
    stack = make_program(
        rewards={"campaigns": CAMPAIGNS, "campaign_overlap": "stack", "annual_cap": None}
    )
    decision = earn(stack, referral=fintech)
    assert decision.entries[0].amount == Decimal("700.00")  # 200 × 2 + 300
    outcomes = {s.rule: s.outcome for s in decision.trace}
    assert outcomes["campaign Next year"] == "not running"
    assert outcomes["campaign Fintech bonus"] == "applies"
    plain = earn(stack)  # Software, not Fintech
    assert plain.entries[0].amount == Decimal("400.00")
    assert {s.rule: s.outcome for s in plain.trace}["campaign Fintech bonus"] == "condition false"


def test_clawback_reverses_only_entries_inside_their_hold(default_program: Program) -> None:
    qualified = earn(default_program).entries[0]
    won = earn(default_program, Milestone.CLOSED_WON).entries[0]
    lost = referral(status=ReferralStatus.CLOSED_LOST)
    inside = clawback([qualified, won], lost, NOW + timedelta(days=30), default_program, STAMP)
    assert [(e.key, e.state) for e in inside.entries] == [
        ("ref-1:closed_won", RewardState.REVERSED)
    ]
    assert inside.entries[0].amount == won.amount
    after = clawback([won], lost, NOW + timedelta(days=91), default_program, STAMP)
    assert after.entries == []
    assert any("hold ended" in s.detail for s in after.trace)


def test_bad_reward_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="overlap"):
        make_program(
            rewards={
                "tiers": [
                    {
                        "name": "A",
                        "min_qualified": 1,
                        "max_qualified": 3,
                        "per_qualified": 1,
                        "per_close": 1,
                    },
                    {"name": "B", "min_qualified": 3, "per_qualified": 2, "per_close": 2},
                ]
            }
        )
    with pytest.raises(ValueError, match="multiplier"):
        make_program(rewards={"campaigns": [{"name": "empty"}]})
