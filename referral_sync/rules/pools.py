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


@dataclass(frozen=True)
class Pick:
    """The chosen member and why."""

    member: PoolMember
    key: str
    reason: str


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


def _score(method: PoolMethod, member: PoolMember, key: str, state: RoutingState) -> float:
    if method is PoolMethod.WEIGHTED:
        return state.assigned.get(key, 0) / member.weight
    if method is PoolMethod.LOAD_BALANCED:
        return float(state.open_counts.get(member.owner, 0))
    return float(state.assigned.get(key, 0))


_SCORE_NAME = {
    PoolMethod.WEIGHTED: "pointer",
    PoolMethod.LOAD_BALANCED: "open referrals",
    PoolMethod.ROUND_ROBIN: "assignments",
}


def pick_member(
    name: str,
    pool: Pool,
    *,
    tags: list[str],
    excluded: Mapping[str, str],
    state: RoutingState,
    trace: list[Step],
) -> Pick | None:
    """The member who takes the next referral from pool ``name``, or None if nobody can.

    ``excluded`` maps owners who may not take it to why (previous owner, inactive).
    """
    needed = frozenset(pool.required_tags) | frozenset(tags)
    scored: list[tuple[float, int, PoolMember, str]] = []
    for order, member in enumerate(pool.members):
        key = counter_key(name, member.owner)
        why = _skip_reason(member, key, needed, excluded, state)
        if why is not None:
            trace.append((f"pool {name}", f"skip {member.owner}", why))
            continue
        scored.append((_score(pool.method, member, key, state), order, member, key))
    if not scored:
        trace.append(
            (
                f"pool {name}",
                "nobody available",
                f"all {len(pool.members)} member(s) skipped",
            )
        )
        return None
    score, _, member, key = min(scored, key=lambda item: (item[0], item[1]))
    label = _SCORE_NAME[pool.method]
    others = ", ".join(f"{m.owner} {s:g}" for s, _, m, _ in scored if m is not member)
    reason = f"{pool.method.value} pick from pool {name}: {member.owner} ({label} {score:g})"
    trace.append(
        (
            f"pool {name}",
            f"assign {member.owner}",
            f"{label} {score:g}" + (f"; others: {others}" if others else ""),
        )
    )
    return Pick(member=member, key=key, reason=reason)
