"""Picking a member of a pool: availability, skills tags, exclusions (previous and inactive
owners), caps per period, then the pool's method. Every skipped member is traced with why.

Counters live in the store (atomic there); here they are read from a snapshot
(``RoutingState``) and the decision names the counters to increment, keyed ``pool:member``.

* ``round_robin`` is count-based: the member with the fewest assignments from this pool,
  ties by pool order, so a stable pool rotates in order and a new member catches up first.
* ``weighted`` gives the member with the lowest pointer (assignments / weight) the referral,
  ties by pool order; over time each member's share converges to weight / total weight.
* ``load_balanced`` picks the member with the fewest open referrals, ties by pool order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

from pydantic import BaseModel, Field

from referral_sync.program.schema import Pool, PoolMember, PoolMethod
from referral_sync.rules.findings import Step


class RoutingState(BaseModel):
    """Counter snapshot the routing rules read (never write)."""

    assigned: dict[str, int] = Field(default_factory=dict)
    period_counts: dict[str, int] = Field(default_factory=dict)
    open_counts: dict[str, int] = Field(default_factory=dict)


def counter_key(pool: str, owner: str) -> str:
    """The key of a member's counters in ``RoutingState`` and ``RoutingDecision.counters``."""
    return f"{pool}:{owner}"


@dataclass(slots=True)
class Pick:
    """The chosen member and why."""

    member: PoolMember
    key: str
    reason: str


@dataclass(frozen=True)
class PoolPlan:
    """A pool compiled once per policy: its members' counter keys and trace labels."""

    name: str
    pool: Pool
    keys: tuple[str, ...]
    rule: str
    method: str
    score_name: str


def compile_pool(name: str, pool: Pool) -> PoolPlan:
    """The plan of pool ``name``."""
    return PoolPlan(
        name=name,
        pool=pool,
        keys=tuple(counter_key(name, m.owner) for m in pool.members),
        rule=f"pool {name}",
        method=pool.method.value,
        score_name=_SCORE_NAME[pool.method],
    )


def _skip_reason(
    member: PoolMember,
    key: str,
    needed: frozenset[str],
    excluded: Mapping[str, str],
    state: RoutingState,
) -> str | None:
    if not member.available:
        return "marked unavailable"
    if member.owner in excluded:
        return excluded[member.owner]
    if needed and not needed.issubset(member.tags):
        return f"lacks tag(s) {', '.join(sorted(needed - set(member.tags)))}"
    if member.cap is not None:
        used = state.period_counts.get(key, 0)
        if used >= member.cap:
            return f"at cap ({used}/{member.cap} this {member.cap_period.value})"
    return None


_SCORE_NAME = {
    PoolMethod.WEIGHTED: "pointer",
    PoolMethod.LOAD_BALANCED: "open referrals",
    PoolMethod.ROUND_ROBIN: "assignments",
}
_NONE: frozenset[str] = frozenset()


_Scored = tuple[float, int, PoolMember, str]


def _others(label: str, scored: list[_Scored], chosen: _Scored) -> str:
    others = ", ".join(f"{m.owner} {s:g}" for s, _, m, _ in scored if m is not chosen[2])
    return f"{label} {chosen[0]:g}" + (f"; others: {others}" if others else "")


def pick_member(
    plan: PoolPlan,
    *,
    tags: list[str],
    excluded: Mapping[str, str],
    state: RoutingState,
    trace: list[Step],
) -> Pick | None:
    """The member who takes the next referral from the pool, or None if nobody can.

    ``excluded`` maps owners who may not take it to why (previous owner, inactive).
    """
    pool = plan.pool
    needed = frozenset(pool.required_tags).union(tags) if tags or pool.required_tags else _NONE
    period, assigned, method = state.period_counts, state.assigned, pool.method
    scored: list[_Scored] = []
    for order, (member, key) in enumerate(zip(pool.members, plan.keys, strict=True)):
        # the common case (available, not excluded, no tags needed, under any cap) decided
        # inline; _skip_reason says why otherwise
        if not (
            member.available
            and not needed
            and member.owner not in excluded
            and (member.cap is None or period.get(key, 0) < member.cap)
        ):
            why = _skip_reason(member, key, needed, excluded, state)
            if why is not None:
                trace.append((plan.rule, f"skip {member.owner}", why))
                continue
        if method is PoolMethod.WEIGHTED:
            score = assigned.get(key, 0) / member.weight
        elif method is PoolMethod.LOAD_BALANCED:
            score = float(state.open_counts.get(member.owner, 0))
        else:
            score = float(assigned.get(key, 0))
        scored.append((score, order, member, key))
    if not scored:
        trace.append((plan.rule, "nobody available", f"all {len(pool.members)} member(s) skipped"))
        return None
    chosen = min(scored)  # the lowest score, ties by pool order (orders are unique)
    score, _, member, key = chosen
    label = plan.score_name
    reason = f"{plan.method} pick from pool {plan.name}: {member.owner} ({label} {score:g})"
    trace.append((plan.rule, f"assign {member.owner}", partial(_others, label, scored, chosen)))
    return Pick(member, key, reason)
