"""Traces recorded raw and written on first read: a decision reads, dumps, compares and
pickles the same as one validated from its dump."""

from __future__ import annotations

import pickle
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from referral_sync.crm import DuplicateCandidate, DuplicateKind
from referral_sync.models import (
    Milestone,
    Referral,
    ReferralStatus,
    Referrer,
    StatusChange,
    Trace,
    TraceStep,
)
from referral_sync.program.schema import Program
from referral_sync.rules import (
    IntakeDecision,
    IntakeFacts,
    RewardDecision,
    RewardFacts,
    RoutingFacts,
    RoutingState,
    evaluate_intake,
    rewards_for_milestone,
    route_referral,
)

from .conftest import MAPPING, NOW, STAMP, make_program, make_referee, make_referrer


def same_as_validated(decision: BaseModel) -> None:
    validated = type(decision).model_validate(decision.model_dump())
    assert decision == validated
    assert repr(decision) == repr(validated)
    assert decision.model_dump_json() == validated.model_dump_json()
    assert decision.model_fields_set == set(type(decision).model_fields)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"referrer": None},
        {"referee": make_referee(email="dana@gmail.com")},
        {"referrals_today": 10},
        {
            "duplicates": [
                DuplicateCandidate(
                    kind=DuplicateKind.CUSTOMER,
                    matched_on="domain",
                    record_type="Account",
                    record_id="001",
                )
            ]
        },
    ],
)
def test_intake_decisions(overrides: dict[str, Any]) -> None:
    data: dict[str, Any] = {
        "referee": make_referee(),
        "referrer": make_referrer(),
        "referrer_email": "ann@customer-corp.com",
        "now": NOW,
        **overrides,
    }
    program = make_program(
        validity={"icp": {"field": "referee.employees", "op": "gte", "value": 500}}
    )
    decision = evaluate_intake(IntakeFacts(**data), program, MAPPING, STAMP)
    assert isinstance(decision, IntakeDecision)
    same_as_validated(decision)


@pytest.mark.parametrize("milestone", list(Milestone))
def test_reward_decisions(default_program: Program, milestone: Milestone) -> None:
    referral = Referral(
        id="r1",
        referrer=Referrer(email="ann@customer-corp.com"),
        referee=make_referee(),
        submitted_at=NOW - timedelta(days=20),
        history=[StatusChange(status=ReferralStatus.QUALIFIED, at=NOW - timedelta(days=10))],
    )
    facts = RewardFacts(
        referral=referral,
        milestone=milestone,
        referrer_qualified_count=3,
        deal_amount=Decimal(50000),
        now=NOW,
    )
    decision = rewards_for_milestone(facts, default_program, STAMP)
    assert isinstance(decision, RewardDecision) and decision.entries
    same_as_validated(decision)


def test_routing_decision_trace_reads_the_same_rendered_or_built() -> None:
    facts = RoutingFacts(referee=make_referee(), referrer=make_referrer(), now=NOW)
    decision = route_referral(facts, make_program().routing, RoutingState(), STAMP)
    same_as_validated(decision)
    steps = list(decision.trace)
    assert all(isinstance(step, TraceStep) for step in steps)
    again = pickle.loads(pickle.dumps(decision))
    assert again == decision and list(again.trace) == steps
    assert decision.trace + [] == steps and [] + decision.trace == steps
    assert Trace(steps) == decision.trace == steps
