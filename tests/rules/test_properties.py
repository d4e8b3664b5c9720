"""Property tests over generated policies, referrals and counter states."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from referral_sync.models import IntroStrength, Milestone, Referral, Referrer, RoutingDecision
from referral_sync.program.schema import Program, Routing
from referral_sync.rules import (
    RewardFacts,
    RoutingFacts,
    RoutingState,
    rewards_for_milestone,
    route_referral,
)
from referral_sync.rules.conditions import FactView
from referral_sync.rules.territory import compile_table, first_match_plain

from .conftest import NOW, STAMP, make_program, make_referee, make_referrer

COUNTRIES = ["DE", "FR", "US", "GB", "MY"]
OWNERS = [f"005U{i}" for i in range(8)]
FALLBACK = "queue:Referral Queue"

countries = st.sampled_from(COUNTRIES)
employee_counts = st.one_of(st.none(), st.integers(min_value=0, max_value=20000))
clauses = st.one_of(
    st.builds(lambda c: {"field": "referee.country", "op": "eq", "value": c}, countries),
    st.builds(
        lambda cs: {"field": "referee.country", "op": "in", "value": cs},
        st.lists(countries, min_size=1, max_size=3),
    ),
    st.builds(
        lambda op, n: {"field": "referee.employees", "op": op, "value": n},
        st.sampled_from(["gt", "gte", "lt", "lte"]),
        st.integers(0, 20000),
    ),
    st.builds(
        lambda s: {"field": "referral.intro_strength", "op": "eq", "value": s},
        st.sampled_from(["strong", "weak"]),
    ),
)
conditions = st.one_of(
    clauses,
    st.builds(lambda cs: {"all": cs}, st.lists(clauses, min_size=1, max_size=3)),
    st.builds(lambda cs: {"any": cs}, st.lists(clauses, min_size=1, max_size=3)),
    st.builds(lambda c: {"not": c}, clauses),
)
members = st.builds(
    lambda owner, weight, cap, available, tags: {
        "owner": owner,
        "weight": weight,
        "cap": cap,
        "available": available,
        "tags": tags,
    },
    st.sampled_from(OWNERS),
    st.sampled_from([0.5, 1, 2, 3]),
    st.one_of(st.none(), st.integers(1, 5)),
    st.booleans(),
    st.lists(st.sampled_from(["german", "french"]), max_size=2, unique=True),
)
pools = st.builds(
    lambda method, ms: {"method": method, "members": list({m["owner"]: m for m in ms}.values())},
    st.sampled_from(["round_robin", "weighted", "load_balanced"]),
    st.lists(members, min_size=1, max_size=4),
)


@st.composite
def routings(draw: st.DrawFn) -> Routing:
    pool_map = draw(st.dictionaries(st.sampled_from(["p1", "p2"]), pools, max_size=2))
    names = sorted(pool_map)
    rows = []
    for i in range(draw(st.integers(0, 12))):
        row: dict[str, Any] = {"name": f"row{i}", "when": draw(st.one_of(st.none(), conditions))}
        if names and draw(st.booleans()):
            row["pool"] = draw(st.sampled_from(names))
            row["tags"] = draw(st.lists(st.sampled_from(["german", "french"]), max_size=1))
        else:
            row["owner"] = draw(st.sampled_from(OWNERS))
        rows.append(row)
    strategy = draw(st.sampled_from(["referrer_ae", "territory", "referral_rep", "hybrid"]))
    if strategy == "territory" and not rows:
        strategy = "hybrid"
    referral_pool = draw(st.sampled_from(names)) if names else None
    if strategy == "referral_rep" and referral_pool is None:
        strategy = "referrer_ae"
    return Routing.model_validate(
        {
            "strategy": strategy,
            "territories": rows,
            "pools": pool_map,
            "referral_pool": referral_pool,
            "strategic": draw(st.one_of(st.none(), conditions)),
            "existing_account_match": draw(st.booleans()),
            "account_team_role": "CSM",
            "fallback": FALLBACK,
        }
    )


@st.composite
def routing_facts(draw: st.DrawFn) -> RoutingFacts:
    referrer = (
        make_referrer(
            owner_id=draw(st.sampled_from(OWNERS)),
            owner_active=draw(st.booleans()),
            account_team={"CSM": draw(st.sampled_from(OWNERS))},
        )
        if draw(st.booleans())
        else None
    )
    account = make_referrer(owner_id=draw(st.sampled_from(OWNERS))) if draw(st.booleans()) else None
    return RoutingFacts(
        referee=make_referee(country=draw(countries), employees=draw(employee_counts)),
        intro_strength=draw(st.sampled_from(list(IntroStrength))),
        referrer=referrer,
        account_match=account,
        previous_owners=draw(st.lists(st.sampled_from(OWNERS), max_size=4)),
        inactive_owners=draw(st.lists(st.sampled_from(OWNERS), max_size=2)),
        now=NOW,
    )


states = st.builds(
    lambda a, p, o: RoutingState(assigned=a, period_counts=p, open_counts=o),
    st.dictionaries(
        st.sampled_from([f"p{i}:{o}" for i in (1, 2) for o in OWNERS]),
        st.integers(0, 50),
        max_size=6,
    ),
    st.dictionaries(
        st.sampled_from([f"p{i}:{o}" for i in (1, 2) for o in OWNERS]),
        st.integers(0, 6),
        max_size=6,
    ),
    st.dictionaries(st.sampled_from(OWNERS), st.integers(0, 30), max_size=6),
)


@settings(max_examples=200, deadline=None)
@given(routings(), routing_facts(), states)
def test_exactly_one_owner_never_a_previous_or_inactive_one(
    policy: Routing, facts: RoutingFacts, state: RoutingState
) -> None:
    decision = route_referral(facts, policy, state, STAMP)
    assert decision.owner_id
    assert len(decision.counters) <= 1
    if decision.owner_id != FALLBACK:
        assert decision.owner_id not in facts.previous_owners
        assert decision.owner_id not in facts.inactive_owners
    assert sum(1 for s in decision.trace if s.outcome.startswith("assign ")) == 1


@settings(max_examples=100, deadline=None)
@given(routings(), routing_facts(), states)
def test_same_inputs_same_decision(
    policy: Routing, facts: RoutingFacts, state: RoutingState
) -> None:
    first = route_referral(facts, policy, state, STAMP)
    again = route_referral(
        facts,
        Routing.model_validate(policy.model_dump(by_alias=True)),
        state.model_copy(deep=True),
        STAMP,
    )
    assert first.model_dump() == again.model_dump()


@settings(max_examples=100, deadline=None)
@given(routings(), routing_facts(), states)
def test_decision_with_its_lazy_trace_round_trips_through_its_dump(
    policy: Routing, facts: RoutingFacts, state: RoutingState
) -> None:
    decision = route_referral(facts, policy, state, STAMP)
    validated = RoutingDecision.model_validate(decision.model_dump())
    assert decision == validated
    assert repr(decision) == repr(validated)
    assert decision.model_fields_set == set(RoutingDecision.model_fields)


@settings(max_examples=300, deadline=None)
@given(routings(), routing_facts())
def test_territory_index_agrees_with_top_to_bottom_evaluation(
    policy: Routing, facts: RoutingFacts
) -> None:
    view = FactView(facts.referee, facts.referrer, facts.intro_strength, NOW, "p")
    indexed = compile_table(policy.territories).first_match(view, [])
    assert indexed is first_match_plain(policy.territories, view)


def apply(state: RoutingState, counters: dict[str, int]) -> None:
    for key, inc in counters.items():
        state.assigned[key] = state.assigned.get(key, 0) + inc
        state.period_counts[key] = state.period_counts.get(key, 0) + inc


@settings(max_examples=20, deadline=None)
@given(st.lists(st.sampled_from([0.5, 1, 2, 3, 5]), min_size=2, max_size=5))
def test_weighted_shares_converge_to_weights(weights: list[float]) -> None:
    policy = Routing.model_validate(
        {
            "strategy": "referral_rep",
            "referral_pool": "reps",
            "pools": {
                "reps": {
                    "method": "weighted",
                    "members": [{"owner": f"005R{i}", "weight": w} for i, w in enumerate(weights)],
                }
            },
        }
    )
    state, rounds = RoutingState(), 500
    facts = RoutingFacts(referee=make_referee(), now=NOW)
    for _ in range(rounds):
        apply(state, route_referral(facts, policy, state, STAMP).counters)
    total = sum(weights)
    slack = max(weights) / min(weights) + 1
    for i, weight in enumerate(weights):
        assert abs(state.assigned[f"reps:005R{i}"] - rounds * weight / total) <= slack


@settings(max_examples=60, deadline=None)
@given(routings(), st.lists(routing_facts(), min_size=1, max_size=20))
def test_caps_are_never_exceeded(policy: Routing, batch: list[RoutingFacts]) -> None:
    state = RoutingState()
    for facts in batch:
        apply(state, route_referral(facts, policy, state, STAMP).counters)
    for name, pool in policy.pools.items():
        for member in pool.members:
            if member.cap is not None:
                assert state.period_counts.get(f"{name}:{member.owner}", 0) <= member.cap


campaign = st.builds(
    lambda m, b: {"name": "boost", "multiplier": m, "bonus": b},
    st.one_of(st.none(), st.sampled_from([1.5, 2, 3])),
    st.sampled_from([0, 50, 500]),
)


@settings(max_examples=80, deadline=None)
@given(
    cap=st.integers(0, 20000),
    campaigns=st.lists(campaign, max_size=2),
    overlap=st.sampled_from(["best", "stack"]),
    partner=st.booleans(),
    events=st.lists(
        st.tuples(st.sampled_from(list(Milestone)), st.integers(1, 200000)), min_size=1, max_size=25
    ),
)
def test_rewards_never_exceed_the_annual_cap(
    cap: int,
    campaigns: list[dict[str, Any]],
    overlap: str,
    partner: bool,
    events: list[tuple[Milestone, int]],
) -> None:
    program: Program = make_program(
        kind="partner" if partner else "customer",
        rewards={
            "annual_cap": cap,
            "campaigns": [c for c in campaigns if c["multiplier"] or c["bonus"]],
            "campaign_overlap": overlap,
        },
    )
    paid, qualified = Decimal(0), 0
    for number, (milestone, deal) in enumerate(events):
        qualified += milestone is Milestone.QUALIFIED
        referral = Referral(
            id=f"r{number}",
            referrer=Referrer(email="ann@customer-corp.com"),
            referee=make_referee(),
            submitted_at=NOW,
        )
        facts = RewardFacts(
            referral=referral,
            milestone=milestone,
            referrer_qualified_count=max(qualified, 1),
            referrer_paid_this_year=paid,
            deal_amount=Decimal(deal),
            now=NOW,
        )
        decision = rewards_for_milestone(facts, program, STAMP)
        again = rewards_for_milestone(facts, program, STAMP)
        assert decision.model_dump() == again.model_dump()
        paid += sum((e.amount for e in decision.entries), Decimal(0))
        assert all(e.amount > 0 for e in decision.entries)
    assert paid <= cap
