"""Routing with state: resolve the owners a policy names, run the pure router inside the store's
counter lock so round robin and caps stay exact across nodes, and return a CRM owner."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from referral_sync.clock import Clock
from referral_sync.crm import CrmPort, Owner, ReferrerContext
from referral_sync.errors import ConfigurationError
from referral_sync.models import IntroStrength, Referee, RoutingDecision
from referral_sync.program.schema import CapPeriod, Routing
from referral_sync.rules import (
    PolicyStamp,
    RoutingFacts,
    RoutingState,
    counter_key,
    route_referral,
    sla_reroute,
)
from referral_sync.store import Store

OWNER_CACHE_SECONDS = 300


def period_label(period: CapPeriod, now: datetime) -> str:
    """The counter bucket a cap period falls in, e.g. ``day:2026-11-23``."""
    if period is CapPeriod.DAY:
        return f"day:{now:%Y-%m-%d}"
    if period is CapPeriod.WEEK:
        year, week, _ = now.isocalendar()
        return f"week:{year}-W{week:02d}"
    return f"month:{now:%Y-%m}"


class OwnerDirectory:
    """Owner look-ups with a short cache: a policy names the same few owners again and again,
    and each look-up costs a CRM API call."""

    def __init__(self, crm: CrmPort, clock: Clock) -> None:
        self._crm = crm
        self._clock = clock
        self._cache: dict[str, tuple[datetime, Owner | None]] = {}

    def get(self, ref: str) -> Owner | None:
        """The owner ``ref`` names, or None if the CRM has no such user or queue."""
        now = self._clock()
        hit = self._cache.get(ref)
        if hit and now - hit[0] < timedelta(seconds=OWNER_CACHE_SECONDS):
            return hit[1]
        owner = self._crm.get_owner(ref)
        self._cache[ref] = (now, owner)
        return owner

    def prime(self, owners: Mapping[str, Owner | None]) -> None:
        """Remember owners the CRM returned along with another read."""
        now = self._clock()
        for ref, owner in owners.items():
            self._cache[ref] = (now, owner)

    def unusable(self, refs: set[str]) -> list[str]:
        """Refs that name no owner or an inactive one."""
        out = []
        for ref in sorted(refs):
            owner = self.get(ref)
            if owner is None or not owner.active:
                out.append(ref)
        return out


def named_owners(routing: Routing) -> set[str]:
    """Every owner ref a routing policy can hand a referral to."""
    refs = {routing.fallback}
    refs.update(t.owner for t in routing.territories if t.owner)
    for pool in routing.pools.values():
        refs.update(m.owner for m in pool.members)
    return refs


@dataclass(frozen=True)
class RoutedOwner:
    """The router's decision and the CRM owner it resolved to."""

    decision: RoutingDecision
    owner: Owner


class Router:
    """Runs ``rules.route_referral`` against live counters and resolves the owner."""

    def __init__(self, store: Store, owners: OwnerDirectory) -> None:
        self._store = store
        self.owners = owners

    def route(self, *, routing: Routing, stamp: PolicyStamp, referee: Referee,
              intro_strength: IntroStrength, referrer: ReferrerContext | None,
              account_match: ReferrerContext | None, previous_owners: list[str],
              now: datetime, reroute_from: str | None = None,
              program_id: str = "default") -> RoutedOwner:
        """Pick an owner; counters are read and bumped in one locked transaction.
        With ``reroute_from`` (the current owner) it is an SLA re-route (``sla_reroute``):
        neither that owner nor any previous one gets the referral again.

        Raises:
            ConfigurationError: if the owner the policy chose does not exist in the CRM (the
                fallback must always resolve).
        """
        candidates = named_owners(routing)
        for ctx in (referrer, account_match):
            if ctx and ctx.owner_id:
                candidates.add(ctx.owner_id)
            if ctx:
                candidates.update(ctx.account_team.values())
        inactive = self.owners.unusable(candidates)
        facts = RoutingFacts(
            referee=referee, intro_strength=intro_strength, referrer=referrer,
            account_match=account_match, previous_owners=previous_owners,
            inactive_owners=inactive, now=now, program_id=program_id,
        )
        member_period = {counter_key(name, m.owner): period_label(m.cap_period, now)
                         for name, pool in routing.pools.items() for m in pool.members}
        with self._store.counters.locked() as counters:
            by_period = {label: counters.read(label) for label in set(member_period.values())}
            state = RoutingState(
                assigned=counters.read("total"),
                period_counts={key: by_period[label].get(key, 0)
                               for key, label in member_period.items()},
                open_counts=counters.read("open"),
            )
            if reroute_from is not None:
                decision = sla_reroute(facts, routing, state, stamp, current_owner=reroute_from)
            else:
                decision = route_referral(facts, routing, state, stamp)
            counters.increment("total", decision.counters)
            for key, amount in decision.counters.items():
                if key in member_period:
                    counters.increment(member_period[key], {key: amount})
            counters.increment("open", {decision.owner_id: 1})
        owner = self.owners.get(decision.owner_id)
        if owner is None:
            raise ConfigurationError(
                f"routing chose {decision.owner_id!r}, which is not a user or queue in the CRM"
            )
        return RoutedOwner(decision=decision, owner=owner)
