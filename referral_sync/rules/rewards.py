"""What a referrer earns at a milestone, and what is clawed back (DESIGN.md §3, "Rewards").

Steps, each traced: timing (at_qualification → qualified only, at_close → closed_won only,
tiered → both) → attribution window → base amount (tier by the referrer's qualified count,
or revenue share of the deal for partner / revenue_share programs at close) → campaigns
(date window, milestone, ``when`` condition; ``best`` or ``stack``) → annual cap (trimmed to
what is left; nothing left → no entry) → approval threshold and hold period.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import partial

from pydantic import BaseModel, ConfigDict, Field

from referral_sync.crm import ReferrerContext
from referral_sync.models import (
    Decision,
    Milestone,
    Referral,
    ReferralStatus,
    RewardEntry,
    RewardState,
    RewardType,
)
from referral_sync.program.schema import Campaign, Program, ProgramKind, RewardTiming, Tier
from referral_sync.rules._memo import cached_on
from referral_sync.rules.conditions import FactView, Notes, compile_condition, explain
from referral_sync.rules.findings import PolicyStamp, Step, as_trace, text

__all__ = ["RewardDecision", "RewardFacts", "clawback", "rewards_for_milestone", "tier_for"]

_CENT = Decimal("0.01")
_PAID_AT = {
    RewardTiming.AT_QUALIFICATION: {Milestone.QUALIFIED},
    RewardTiming.AT_CLOSE: {Milestone.CLOSED_WON},
    RewardTiming.TIERED: {Milestone.QUALIFIED, Milestone.CLOSED_WON},
}


class RewardFacts(BaseModel):
    """What reward rules read. ``referrer_qualified_count`` includes this referral;
    ``referrer_paid_this_year`` sums the referrer's unreversed entries this calendar year."""

    model_config = ConfigDict(frozen=True)

    referral: Referral
    milestone: Milestone
    referrer_qualified_count: int = Field(ge=0)
    referrer_paid_this_year: Decimal = Field(default=Decimal(0), ge=0)
    deal_amount: Decimal | None = None
    now: datetime
    referrer: ReferrerContext | None = None


class RewardDecision(Decision):
    """Ledger entries to write (empty when nothing is earned or reversed)."""

    entries: list[RewardEntry] = Field(default_factory=list)


def _money(amount: Decimal) -> Decimal:
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def tier_for(tiers: list[Tier], qualified_count: int) -> Tier:
    """The tier whose range holds ``qualified_count``; in a gap, the highest tier below it;
    below every tier, the lowest one."""
    return _tier_among(_ordered(tiers), qualified_count)


def _ordered(tiers: list[Tier]) -> list[Tier]:
    return sorted(tiers, key=lambda t: t.min_qualified)


def _tier_among(ordered: list[Tier], qualified_count: int) -> Tier:
    reached = [t for t in ordered if t.min_qualified <= qualified_count]
    for tier in reached:
        if tier.max_qualified is None or qualified_count <= tier.max_qualified:
            return tier
    return reached[-1] if reached else ordered[0]


def _within_window(facts: RewardFacts, program: Program, trace: list[Step]) -> bool:
    """The referral counts if it converts (qualifies) within the attribution window."""
    referral = facts.referral
    window = program.validity.attribution_window_days
    converted = facts.now
    if facts.milestone is Milestone.CLOSED_WON:
        converted = referral.reached_at(ReferralStatus.QUALIFIED) or facts.now
    days = (_aware(converted) - _aware(referral.submitted_at)).days
    inside = days <= window
    trace.append(
        (
            "validity.attribution_window_days",
            "inside" if inside else "outside",
            f"qualified {days} day(s) after submission; window {window} days",
        )
    )
    return inside


def _base(
    facts: RewardFacts, program: Program, trace: list[Step]
) -> tuple[Decimal, RewardType, str | None]:
    rewards = program.rewards
    revenue_share = program.kind is ProgramKind.PARTNER or rewards.type is RewardType.REVENUE_SHARE
    if facts.milestone is Milestone.CLOSED_WON and revenue_share:
        if facts.deal_amount is None:
            trace.append(("rewards.revenue_share_percent", "0", "the deal has no amount to share"))
            return Decimal(0), RewardType.REVENUE_SHARE, None
        amount = _money(facts.deal_amount * rewards.revenue_share_percent / 100)
        trace.append(
            (
                "rewards.revenue_share_percent",
                f"{amount}",
                f"{rewards.revenue_share_percent}% of deal amount {facts.deal_amount}",
            )
        )
        return amount, RewardType.REVENUE_SHARE, None
    ordered = cached_on(rewards, "_rs_tiers", lambda: _ordered(rewards.tiers))
    tier = _tier_among(ordered, facts.referrer_qualified_count)
    amount = tier.per_qualified if facts.milestone is Milestone.QUALIFIED else tier.per_close
    trace.append(
        (
            "rewards.tiers",
            f"{tier.name} {amount}",
            f"{facts.referrer_qualified_count} qualified referral(s); "
            f"{'per_qualified' if facts.milestone is Milestone.QUALIFIED else 'per_close'}",
        )
    )
    reward_type = (
        rewards.type if rewards.type is not RewardType.REVENUE_SHARE else RewardType.ACCOUNT_CREDIT
    )
    return amount, reward_type, tier.name


def _campaign_applies(
    campaign: Campaign, facts: RewardFacts, program: Program, trace: list[Step]
) -> bool:
    rule = f"campaign {campaign.name}"
    today = _aware(facts.now).astimezone(UTC).date()
    if (campaign.starts and today < campaign.starts) or (campaign.ends and today > campaign.ends):
        trace.append(
            (
                rule,
                "not running",
                f"{campaign.starts or '…'} to {campaign.ends or '…'}; today {today}",
            )
        )
        return False
    if facts.milestone.value not in campaign.milestones:
        trace.append(
            (rule, "not for this milestone", f"applies to {', '.join(campaign.milestones)}")
        )
        return False
    if campaign.when is None:
        trace.append((rule, "applies", "running, no condition"))
        return True
    referral = facts.referral
    cond = FactView(
        referral.referee,
        facts.referrer,
        referral.intro_strength,
        facts.now,
        program.id,
        qualified_count=facts.referrer_qualified_count,
        amount=facts.deal_amount,
        referrer_email=str(referral.referrer.email),
        referrer_account_name=referral.referrer.account_name,
    )
    notes: Notes = []
    applies = compile_condition(campaign.when)(cond, notes)
    trace.append((rule, "applies" if applies else "condition false", partial(explain, notes)))
    return applies


def _boosted(campaign: Campaign, amount: Decimal) -> Decimal:
    return amount * (campaign.multiplier or Decimal(1)) + (campaign.bonus or Decimal(0))


def _campaigns(amount: Decimal, facts: RewardFacts, program: Program, trace: list[Step]) -> Decimal:
    running = [c for c in program.rewards.campaigns if _campaign_applies(c, facts, program, trace)]
    if not running:
        return amount
    if program.rewards.campaign_overlap == "stack":
        boosted = amount
        for campaign in running:
            boosted = boosted * (campaign.multiplier or Decimal(1))
        boosted += sum((c.bonus or Decimal(0) for c in running), Decimal(0))
        names = [c.name for c in running]
    else:
        best = max(running, key=lambda c: _boosted(c, amount))
        boosted, names = _boosted(best, amount), [best.name]
    boosted = _money(boosted)
    trace.append(
        (
            "rewards.campaign_overlap",
            f"{program.rewards.campaign_overlap}: {boosted}",
            f"{amount} with {', '.join(names)}",
        )
    )
    return boosted


def _capped(amount: Decimal, facts: RewardFacts, program: Program, trace: list[Step]) -> Decimal:
    cap = program.rewards.annual_cap
    if cap is None:
        return amount
    left = max(cap - facts.referrer_paid_this_year, Decimal(0))
    if amount <= left:
        trace.append(
            (
                "rewards.annual_cap",
                "within",
                f"{facts.referrer_paid_this_year} of {cap} paid this year",
            )
        )
        return amount
    trace.append(
        (
            "rewards.annual_cap",
            f"trimmed to {left}",
            f"{facts.referrer_paid_this_year} of {cap} already paid "
            f"this year; {amount} would exceed it",
        )
    )
    return left


def rewards_for_milestone(
    facts: RewardFacts, program: Program, stamp: PolicyStamp
) -> RewardDecision:
    """The ledger entry a milestone earns (or none), with every step traced. Pure."""
    trace: list[Step] = [
        (
            "rewards",
            facts.milestone.value,
            f"program {program.id}; timing {program.rewards.timing.value}",
        )
    ]
    entry = _earn(facts, program, trace)
    return RewardDecision.model_validate(
        {
            "policy_version": stamp.version,
            "policy_hash": stamp.content_hash,
            "trace": as_trace(trace),
            "entries": [entry] if entry else [],
        },
    )


def _earn(facts: RewardFacts, program: Program, trace: list[Step]) -> RewardEntry | None:
    if facts.milestone not in _PAID_AT[program.rewards.timing]:
        trace.append(
            (
                "rewards.timing",
                "no reward",
                f"{program.rewards.timing.value} pays nothing at {facts.milestone.value}",
            )
        )
        return None
    if not _within_window(facts, program, trace):
        return None
    base, reward_type, tier = _base(facts, program, trace)
    amount = _campaigns(base, facts, program, trace)
    amount = _capped(amount, facts, program, trace)
    if amount <= 0:
        trace.append(("rewards", "no entry", "nothing to pay"))
        return None
    return _entry(facts, program, amount, reward_type, tier, trace)


def _entry(
    facts: RewardFacts,
    program: Program,
    amount: Decimal,
    reward_type: RewardType,
    tier: str | None,
    trace: list[Step],
) -> RewardEntry:
    rewards = program.rewards
    needs_approval = rewards.approval_threshold is not None and amount > rewards.approval_threshold
    trace.append(
        (
            "rewards.approval_threshold",
            "approval needed" if needs_approval else "no approval",
            f"{amount} vs threshold {rewards.approval_threshold}",
        )
    )
    hold_until = None
    if facts.milestone is Milestone.CLOSED_WON:
        hold_until = _aware(facts.now) + timedelta(days=rewards.hold_days)
        trace.append(
            (
                "rewards.hold_days",
                f"held until {hold_until:%Y-%m-%d}",
                "clawed back if the deal is reopened or lost before then",
            )
        )
    reasoning = [f"{rule}: {outcome} ({text(detail)})" for rule, outcome, detail in trace[1:]]
    return RewardEntry(
        referral_id=facts.referral.id,
        milestone=facts.milestone,
        referrer_email=str(facts.referral.referrer.email),
        program=program.id,
        amount=_money(amount),
        currency=rewards.currency,
        reward_type=reward_type,
        tier=tier,
        requires_approval=needs_approval,
        hold_until=hold_until,
        earned_at=facts.now,
        reasoning=reasoning,
    )


def _kept_because(entry: RewardEntry, referral: Referral, now: datetime) -> str | None:
    if entry.referral_id != referral.id:
        return "another referral"
    if entry.state is RewardState.REVERSED:
        return "already reversed"
    if entry.hold_until is None:
        return "no hold period"
    if _aware(now) > _aware(entry.hold_until):
        return f"hold ended {entry.hold_until:%Y-%m-%d}"
    return None


def clawback(
    entries: list[RewardEntry],
    referral: Referral,
    now: datetime,
    program: Program,
    stamp: PolicyStamp,
) -> RewardDecision:
    """Reversed copies of this referral's entries still inside their hold period (the won
    deal was reopened or lost). Entries without a hold, or whose hold ended, stand."""
    trace: list[Step] = [
        (
            "clawback",
            referral.status.value,
            f"program {program.id}; hold {program.rewards.hold_days} days",
        )
    ]
    reversed_entries: list[RewardEntry] = []
    for entry in entries:
        rule = f"entry {entry.key}"
        kept = _kept_because(entry, referral, now)
        if kept is not None:
            trace.append((rule, "kept", kept))
            continue
        note = (
            "already fulfilled: recover it manually"
            if entry.state is RewardState.FULFILLED
            else "not yet paid"
        )
        trace.append((rule, "reversed", f"{referral.status.value} within the hold; {note}"))
        reasoning = f"reversed: {referral.status.value} before {entry.hold_until:%Y-%m-%d} ({note})"
        reversed_entries.append(
            entry.model_copy(
                update={"state": RewardState.REVERSED, "reasoning": [*entry.reasoning, reasoning]}
            )
        )
    return RewardDecision(
        policy_version=stamp.version,
        policy_hash=stamp.content_hash,
        trace=as_trace(trace),
        entries=reversed_entries,
    )
