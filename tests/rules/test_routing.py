"""Routing: strategies, pools, caps, exclusions, SLA re-route, traces, purity."""

from __future__ import annotations

from typing import Any

import pytest

from referral_sync.models import IntroStrength, OwnerKind, RoutingDecision
from referral_sync.program.schema import Routing
from referral_sync.rules import RoutingFacts, RoutingState, route_referral, sla_reroute
from referral_sync.rules.territory import compile_table

from .conftest import NOW, STAMP, make_referee, make_referrer

TERRITORIES: list[dict[str, Any]] = [
    {
        "name": "DACH enterprise",
        "when": {
            "all": [
                {"field": "referee.country", "op": "in", "value": ["DE", "AT", "CH"]},
                {"field": "referee.employees", "op": "gte", "value": 1000},
            ]
        },
        "owner": "005DACH_ENT",
    },
    {
        "name": "DACH",
        "when": {"field": "referee.country", "op": "in", "value": ["DE", "AT", "CH"]},
        "pool": "emea",
        "tags": ["german"],
    },
    {
        "name": "North America",
        "when": {"field": "referee.country", "op": "in", "value": ["US", "CA"]},
        "owner": "005NA",
    },
]
POOLS: dict[str, Any] = {
    "emea": {
        "method": "round_robin",
        "members": [
            {"owner": "005ANNA", "tags": ["german", "french"]},
            {"owner": "005BEN", "tags": ["german"]},
            {"owner": "005CLAIRE", "tags": ["french"]},
        ],
    },
    "referral_reps": {
        "method": "weighted",
        "members": [{"owner": "005REP1", "weight": 3}, {"owner": "005REP2", "weight": 1}],
    },
}


def routing(**overrides: Any) -> Routing:
    data: dict[str, Any] = {"strategy": "territory", "territories": TERRITORIES, "pools": POOLS}
    data.update(overrides)
    return Routing.model_validate(data)


def facts(**overrides: Any) -> RoutingFacts:
    data: dict[str, Any] = {"referee": make_referee(), "referrer": make_referrer(), "now": NOW}
    data.update(overrides)
    return RoutingFacts(**data)


def route(
    policy: Routing, state: RoutingState | None = None, **fact_overrides: Any
) -> RoutingDecision:
    return route_referral(facts(**fact_overrides), policy, state or RoutingState(), STAMP)


def test_territory_owner_and_trace_shows_each_evaluated_row() -> None:
    decision = route(routing(), referee=make_referee(country="US"))
    assert (decision.owner_id, decision.strategy) == ("005NA", "territory")
    assert decision.owner_kind is OwnerKind.USER
    rows = [s for s in decision.trace if s.rule.startswith("territory #")]
    assert [(s.rule, s.outcome) for s in rows] == [("territory #3 North America", "match")]
    assert "referee.country in ['US', 'CA'] → true ('US')" in rows[0].detail
    assert decision.policy_version == STAMP.version and decision.policy_hash == STAMP.content_hash


def test_first_matching_row_wins() -> None:
    big = route(routing(), referee=make_referee(country="AT", employees=5000))
    assert big.owner_id == "005DACH_ENT"
    small = route(routing(), referee=make_referee(country="AT", employees=50))
    assert small.pool == "emea" and small.strategy == "territory"


def test_pool_skills_filter_and_round_robin_rotation() -> None:
    policy = routing()
    state = RoutingState()
    owners = []
    for _ in range(4):
        decision = route(policy, state)
        owners.append(decision.owner_id)
        for key, inc in decision.counters.items():
            state.assigned[key] = state.assigned.get(key, 0) + inc
    assert owners == ["005ANNA", "005BEN", "005ANNA", "005BEN"]  # CLAIRE lacks "german"
    assert any(s.outcome == "skip 005CLAIRE" and "german" in s.detail for s in decision.trace)


def test_routing_never_mutates_the_state() -> None:
    state = RoutingState(assigned={"emea:005ANNA": 4}, period_counts={"emea:005ANNA": 1})
    before = state.model_dump()
    decision = route(routing(), state)
    assert state.model_dump() == before
    assert decision.counters == {"emea:005BEN": 1}


def test_caps_and_availability_skip_members_with_reasons() -> None:
    pools = {
        **POOLS,
        "emea": {
            "members": [
                {"owner": "005ANNA", "tags": ["german"], "cap": 2, "cap_period": "week"},
                {"owner": "005BEN", "tags": ["german"], "available": False},
            ]
        },
    }
    state = RoutingState(period_counts={"emea:005ANNA": 2})
    decision = route(routing(pools=pools), state)
    assert decision.owner_id == "queue:Referral Queue" and decision.strategy == "fallback"
    skips = {s.outcome: s.detail for s in decision.trace if s.rule == "pool emea"}
    assert skips["skip 005ANNA"] == "at cap (2/2 this week)"
    assert skips["skip 005BEN"] == "marked unavailable"
    assert decision.owner_kind is OwnerKind.QUEUE


def test_weighted_pool_uses_lowest_pointer_and_load_balanced_lowest_open_count() -> None:
    policy = routing(strategy="referral_rep", referral_pool="referral_reps")
    state = RoutingState(assigned={"referral_reps:005REP1": 3, "referral_reps:005REP2": 1})
    # pointers: REP1 3/3 = 1.0, REP2 1/1 = 1.0 → tie goes to pool order
    assert route(policy, state).owner_id == "005REP1"
    state.assigned["referral_reps:005REP1"] = 4
    assert route(policy, state).owner_id == "005REP2"
    balanced = {
        **POOLS,
        "referral_reps": {
            "method": "load_balanced",
            "members": [{"owner": "005REP1"}, {"owner": "005REP2"}],
        },
    }
    policy = routing(strategy="referral_rep", referral_pool="referral_reps", pools=balanced)
    busy = RoutingState(open_counts={"005REP1": 9, "005REP2": 2})
    assert route(policy, busy).owner_id == "005REP2"


def test_referrer_ae_then_account_team_role_then_fallback() -> None:
    policy = routing(strategy="referrer_ae", account_team_role="CSM")
    assert route(policy).owner_id == "005AE"
    inactive = make_referrer(owner_active=False, account_team={"CSM": "005CSM"})
    decision = route(policy, referrer=inactive)
    assert decision.owner_id == "005CSM"
    assert any(s.outcome == "skip 005AE" and "inactive" in s.detail for s in decision.trace)
    assert route(policy, referrer=None).owner_id == "queue:Referral Queue"


def test_hybrid_sends_strategic_to_the_ae_and_the_rest_to_territory() -> None:
    policy = routing(
        strategy="hybrid",
        strategic={"field": "referral.intro_strength", "op": "eq", "value": "strong"},
    )
    strong = route(policy, intro_strength=IntroStrength.STRONG)
    assert (strong.owner_id, strong.strategy, strong.first_action) == (
        "005AE",
        "referrer_ae",
        "call",
    )
    weak = route(policy, referee=make_referee(country="US"))
    assert (weak.owner_id, weak.strategy, weak.first_action) == ("005NA", "territory", "email")


def test_existing_account_match_wins_where_configured() -> None:
    account = make_referrer(account_id="001PROS", account_name="Prospect Labs", owner_id="005OWN")
    assert route(routing(), account_match=account).owner_id == "005OWN"
    off = routing(existing_account_match=False)
    assert route(off, account_match=account, referee=make_referee(country="US")).owner_id == "005NA"
    gone = account.model_copy(update={"owner_active": False})
    assert route(routing(), account_match=gone, referee=make_referee(country="US")).owner_id == (
        "005NA"
    )


def test_previous_and_inactive_owners_are_skipped() -> None:
    decision = route(routing(), previous_owners=["005ANNA"], inactive_owners=["005BEN"])
    assert decision.owner_id == "queue:Referral Queue"
    reasons = {s.outcome: s.detail for s in decision.trace if s.rule == "pool emea"}
    assert reasons == {
        "skip 005ANNA": "previous owner",
        "skip 005BEN": "inactive",
        "skip 005CLAIRE": "lacks tag(s) german",
        "nobody available": "all 3 member(s) skipped",
    }


def test_sla_reroute_never_returns_to_the_current_or_a_previous_owner() -> None:
    policy = routing()
    first = route(policy)
    again = sla_reroute(facts(), policy, RoutingState(), STAMP, current_owner=first.owner_id)
    assert again.owner_id not in {first.owner_id}
    assert again.trace[0].rule == "sla.reroute" and first.owner_id in again.trace[0].detail
    assert again.reason.startswith("SLA re-route")


def test_fallback_is_required_and_pools_must_exist() -> None:
    with pytest.raises(ValueError, match="unknown pool"):
        routing(referral_pool="nope")
    with pytest.raises(ValueError, match="fallback"):
        routing(fallback=" ")
    with pytest.raises(ValueError, match="needs at least one row"):
        routing(territories=[])


def test_territory_index_narrows_rows_and_says_so() -> None:
    rows = [
        {
            "name": f"{c}-{lo}",
            "owner": f"005{c}{lo}",
            "when": {
                "all": [
                    {"field": "referee.country", "op": "eq", "value": c},
                    {"field": "referee.employees", "op": "gte", "value": lo},
                ]
            },
        }
        for c in ("DE", "FR", "US", "GB")
        for lo in (1000, 100, 0)
    ]
    policy = routing(territories=rows)
    table = compile_table(policy.territories)
    assert (table.key_field, table.range_field) == ("referee.country", "referee.employees")
    decision = route(policy, referee=make_referee(country="fr", employees=150))
    assert decision.owner_id == "005FR100"
    index = next(s for s in decision.trace if s.rule == "territories")
    assert index.outcome == "2 of 12 rows can match"
    evaluated = [s.rule for s in decision.trace if s.rule.startswith("territory #")]
    assert evaluated == ["territory #5 FR-100"]
