"""Who gets a referral (DESIGN.md §3, "Routing strategies").

Order: existing-account match (when configured) → the strategy → the referral pool (when
one is named) → the fallback, which always takes it. Strategies:

* ``referrer_ae``: the owner of the referrer's account if active, else the configured
  account-team role;
* ``territory``: the first matching row of the territory table → its owner or pool;
* ``referral_rep``: the referral pool;
* ``hybrid``: referrals meeting ``strategic`` → the referrer's AE, the rest → territory.

Previous and inactive owners are never chosen (every skip is traced), so an SLA re-route
never goes back to someone who already had the referral. The fallback queue is the owner of
last resort and takes the referral even if it held it before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

from referral_sync.crm import ReferrerContext
from referral_sync.models import IntroStrength, OwnerKind, Referee, RoutingDecision, Trace
from referral_sync.program.schema import Routing, RoutingStrategy
from referral_sync.rules._memo import cached_on
from referral_sync.rules.conditions import FactView, Notes, Test, compile_condition, explain
from referral_sync.rules.findings import PolicyStamp, Step
from referral_sync.rules.pools import PoolPlan, RoutingState, compile_pool, counter_key, pick_member
from referral_sync.rules.territory import TerritoryTable, compile_table

__all__ = ["RoutingFacts", "RoutingState", "counter_key", "route_referral", "sla_reroute"]


class RoutingFacts(BaseModel):
    """What routing reads: the referral and CRM snapshots taken just before."""

    model_config = ConfigDict(frozen=True)

    referee: Referee
    intro_strength: IntroStrength = IntroStrength.WEAK
    referrer: ReferrerContext | None = None
    account_match: ReferrerContext | None = None
    previous_owners: list[str] = Field(default_factory=list)
    inactive_owners: list[str] = Field(default_factory=list)
    now: datetime
    program_id: str = "default"


@dataclass(slots=True)
class _Target:
    owner: str
    strategy: str
    reason: str
    pool: str | None = None
    counter: str | None = None


@dataclass(slots=True)
class _Context:
    facts: RoutingFacts
    cond_facts: FactView
    routing: Routing
    plan: _Plan
    state: RoutingState
    excluded: Mapping[str, str]
    trace: list[Step]


_Step = Callable[[_Context], "_Target | None"]


@dataclass(frozen=True)
class _Plan:
    """A routing section compiled once (kept on the frozen model): the steps in order, the
    territory table and the strategic condition."""

    steps: tuple[_Step, ...]
    table: TerritoryTable
    strategic: Test | None
    pools: dict[str, PoolPlan]
    strategy: str


def _plan(routing: Routing) -> _Plan:
    return cached_on(routing, "_rs_plan", lambda: _compile_plan(routing))


def _compile_plan(routing: Routing) -> _Plan:
    steps: list[_Step] = []
    if routing.existing_account_match:
        steps.append(_existing_account)
    strategy = routing.strategy
    if strategy is RoutingStrategy.REFERRER_AE:
        steps.append(_referrer_ae)
    elif strategy is RoutingStrategy.TERRITORY:
        steps.append(_territory)
    elif strategy is RoutingStrategy.HYBRID:
        steps.append(lambda ctx: _referrer_ae(ctx) if _strategic(ctx) else None)
        steps.append(_territory)
    steps.append(_referral_pool)
    strategic = compile_condition(routing.strategic) if routing.strategic is not None else None
    pools = {name: compile_pool(name, pool) for name, pool in routing.pools.items()}
    return _Plan(tuple(steps), compile_table(routing.territories), strategic, pools, strategy.value)


def _usable(ctx: _Context, owner: str | None, rule: str, what: str) -> bool:
    if not owner:
        ctx.trace.append((rule, "skip", f"no {what}"))
        return False
    why = ctx.excluded.get(owner)
    if why:
        ctx.trace.append((rule, f"skip {owner}", f"{what}: {why}"))
        return False
    return True


def _no_account(referee: Referee) -> str:
    return f"no account owns {referee.domain}"


def _existing_account(ctx: _Context) -> _Target | None:
    match = ctx.facts.account_match
    rule = "existing_account_match"
    if match is None:
        ctx.trace.append((rule, "no match", partial(_no_account, ctx.facts.referee)))
        return None
    name = match.account_name or match.account_id or "an account"
    owner = match.owner_id
    if owner and not match.owner_active:
        ctx.trace.append((rule, f"skip {owner}", "account owner is inactive"))
        return None
    if not _usable(ctx, owner, rule, f"owner of {name}"):
        return None
    assert owner is not None
    ctx.trace.append((rule, f"assign {owner}", f"the referee's domain belongs to {name}"))
    return _Target(owner, "existing_account", f"existing account {name}: its owner")


def _referrer_ae(ctx: _Context) -> _Target | None:
    ref = ctx.facts.referrer
    rule = "referrer_ae"
    if ref is None:
        ctx.trace.append((rule, "skip", "referrer not in the CRM"))
        return None
    if ref.owner_id and not ref.owner_active:
        ctx.trace.append((rule, f"skip {ref.owner_id}", "account owner is inactive"))
    elif _usable(ctx, ref.owner_id, rule, "referrer's account owner"):
        assert ref.owner_id is not None
        ctx.trace.append((rule, f"assign {ref.owner_id}", "owner of the referrer's account"))
        return _Target(ref.owner_id, "referrer_ae", "the referrer's account executive")
    role = ctx.routing.account_team_role
    if role is None:
        return None
    member = ref.account_team.get(role)
    if not _usable(ctx, member, f"{rule}.account_team", f"account-team {role}"):
        return None
    assert member is not None
    ctx.trace.append(
        (f"{rule}.account_team", f"assign {member}", f"the referrer's account-team {role}")
    )
    return _Target(member, "referrer_ae", f"the referrer's account-team {role}")


def _pool(ctx: _Context, name: str, strategy: str, tags: list[str], why: str) -> _Target | None:
    pick = pick_member(
        ctx.plan.pools[name],
        tags=tags,
        excluded=ctx.excluded,
        state=ctx.state,
        trace=ctx.trace,
    )
    if pick is None:
        return None
    return _Target(pick.member.owner, strategy, f"{why}: {pick.reason}", name, pick.key)


def _territory(ctx: _Context) -> _Target | None:
    row = ctx.plan.table.first_row(ctx.cond_facts, ctx.trace)
    if row is None:
        return None
    territory = row.territory
    if territory.pool is not None:
        return _pool(ctx, territory.pool, "territory", territory.tags, row.rule)
    owner = territory.owner
    if not _usable(ctx, owner, row.rule, "territory owner"):
        return None
    assert owner is not None
    ctx.trace.append((row.rule, f"assign {owner}", "the territory's owner"))
    return _Target(owner, "territory", f"{row.rule}: its owner")


def _strategic(ctx: _Context) -> bool:
    test = ctx.plan.strategic
    if test is None:
        ctx.trace.append(("hybrid.strategic", "false", "no strategic condition set"))
        return False
    notes: Notes = []
    result = test(ctx.cond_facts, notes)
    ctx.trace.append(("hybrid.strategic", "true" if result else "false", partial(explain, notes)))
    return result


def _referral_pool(ctx: _Context) -> _Target | None:
    name = ctx.routing.referral_pool
    if name is None:
        return None
    return _pool(ctx, name, "referral_rep", [], "referral pool")


_NOBODY: Mapping[str, str] = MappingProxyType({})


def _excluded(facts: RoutingFacts) -> Mapping[str, str]:
    if not facts.inactive_owners and not facts.previous_owners:
        return _NOBODY
    excluded = {owner: "inactive" for owner in facts.inactive_owners}
    excluded.update({owner: "previous owner" for owner in facts.previous_owners})
    return excluded


def route_referral(
    facts: RoutingFacts, routing: Routing, state: RoutingState, stamp: PolicyStamp
) -> RoutingDecision:
    """Choose exactly one owner. Pure: ``state`` is read, never changed; the decision's
    ``counters`` name what the store must increment if the decision is applied."""
    return _route(facts, routing, state, stamp, [])


def _route(
    facts: RoutingFacts,
    routing: Routing,
    state: RoutingState,
    stamp: PolicyStamp,
    trace: list[Step],
) -> RoutingDecision:
    plan = _plan(routing)
    trace.append(("routing", plan.strategy, f"policy {stamp.version} ({stamp.content_hash})"))
    cond_facts = FactView(
        facts.referee, facts.referrer, facts.intro_strength, facts.now, facts.program_id
    )
    ctx = _Context(facts, cond_facts, routing, plan, state, _excluded(facts), trace)
    target = None
    for step in plan.steps:
        target = step(ctx)
        if target is not None:
            break
    if target is None:
        held = " (it held this referral before)" if routing.fallback in ctx.excluded else ""
        trace.append(
            ("fallback", f"assign {routing.fallback}", "no earlier step placed the referral" + held)
        )
        target = _Target(routing.fallback, "fallback", "fallback: no rule placed it")
    strong = facts.intro_strength is IntroStrength.STRONG
    action = routing.first_action.strong if strong else routing.first_action.weak
    trace.append(("first_action", action, "strong intro" if strong else "weak intro"))
    return RoutingDecision.model_validate(
        {
            "policy_version": stamp.version,
            "policy_hash": stamp.content_hash,
            "trace": Trace(trace),
            "owner_id": target.owner,
            "owner_kind": OwnerKind.QUEUE if target.owner.startswith("queue:") else OwnerKind.USER,
            "strategy": target.strategy,
            "reason": target.reason,
            "first_action": action,
            "pool": target.pool,
            "counters": {target.counter: 1} if target.counter else {},
        },
    )


def sla_reroute(
    facts: RoutingFacts,
    routing: Routing,
    state: RoutingState,
    stamp: PolicyStamp,
    *,
    current_owner: str | None = None,
) -> RoutingDecision:
    """Re-route a referral left untouched past the SLA: the same policy, with the current
    owner and every previous owner excluded, so it never goes back to one of them."""
    extra = [current_owner] if current_owner else []
    previous = list(dict.fromkeys([*facts.previous_owners, *extra]))
    rerouted = facts.model_copy(update={"previous_owners": previous})
    why = f"untouched after {routing.sla.reroute_after_hours} h; never back to " + (
        ", ".join(previous) or "nobody"
    )
    decision = _route(rerouted, routing, state, stamp, [("sla.reroute", "re-route", why)])
    decision.reason = f"SLA re-route: {decision.reason}"
    return decision
