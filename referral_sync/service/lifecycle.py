"""Applying CRM change events: re-read the referral's records (events may be stale, repeated or
out of order), walk the status machine to where the CRM is now, and for each milestone write
rewards and referrer notices exactly once (ledger and outbox keys make repeats no-ops)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from referral_sync.crm import CrmTask
from referral_sync.errors import IllegalTransition
from referral_sync.models import (
    ChangeEvent,
    CrmObject,
    Milestone,
    Referral,
    ReferralStatus,
    RewardEntry,
    RewardState,
    path_to,
)
from referral_sync.program.schema import Program
from referral_sync.rules import RewardFacts, clawback, rewards_for_milestone
from referral_sync.service.context import ServiceContext

log = logging.getLogger(__name__)

S = ReferralStatus

_NOTICE_FOR = {S.QUALIFIED: "qualified", S.DISQUALIFIED: "disqualified", S.NURTURE: "nurture",
               S.CLOSED_WON: "closed_won", S.CLOSED_LOST: "closed_lost"}
_MILESTONE_FOR = {S.QUALIFIED: Milestone.QUALIFIED, S.CLOSED_WON: Milestone.CLOSED_WON}
_CLOSED = {S.CLOSED_WON, S.CLOSED_LOST, S.DISQUALIFIED}


class Outcome(StrEnum):
    """What applying one event did."""

    APPLIED = "applied"
    NO_CHANGE = "no_change"
    NOT_A_REFERRAL = "not_a_referral"


def _money(amount: Decimal, currency: str) -> str:
    return f"{currency} {amount:,.2f}"


@dataclass
class Effects:
    """What one event makes the CRM do, written together in one ``apply_changes`` call."""

    rewards: list[RewardEntry] = field(default_factory=list)
    tasks: list[CrmTask] = field(default_factory=list)


class Lifecycle:
    """The event-processing use case."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def apply(self, event: ChangeEvent) -> Outcome:
        """Bring the referral behind ``event`` up to date with its CRM records."""
        store = self.ctx.store
        if event.noop_reason:
            return Outcome.NO_CHANGE
        referral = (store.referrals.get(event.referral_id) if event.referral_id else None) or \
            store.referrals.by_record(event.record_id)
        if referral is None:
            return Outcome.NOT_A_REFERRAL
        # Saved only if no other worker moved the referral meanwhile (else this job re-runs).
        loaded = referral.status
        target = self._current_status(referral, event)
        if target == referral.status:
            # Our own writes echo back as events, and redeliveries repeat: nothing to do.
            store.referrals.save(referral, self.ctx.clock(), expected=loaded)
            return Outcome.NO_CHANGE
        program = self.ctx.program_for(referral)
        was_open = loaded not in _CLOSED
        effects = Effects()
        for step in path_to(referral.status, target):
            previous = referral.status
            referral.advance(step, self.ctx.clock(), reason=f"{event.provider}:{event.event_id}")
            self._on_enter(referral, previous, program, effects)
        if effects.rewards or effects.tasks or target not in self.ctx.crm.statuses_set_by_crm:
            applied = self.ctx.crm.apply_changes(referral, fields=self._crm_fields(referral),
                                                 rewards=effects.rewards, tasks=effects.tasks)
            for entry in effects.rewards:
                entry.crm_id = applied.rewards.get(entry.key, entry.crm_id)
                store.ledger.update(entry, self.ctx.clock())
        store.referrals.save(referral, self.ctx.clock(), expected=loaded)
        # Only once the event is done: a retried event starts from the stored status again,
        # and must not move the owner's open count twice.
        self._count_open(referral, was_open)
        log.info("referral advanced", extra={"referral_id": referral.id,
                                             "status": referral.status.value})
        return Outcome.APPLIED

    def _current_status(self, referral: Referral, event: ChangeEvent) -> ReferralStatus:
        """Where the CRM says the referral is. A ``complete`` event is trusted for a forward
        move; anything that would move backwards, or an event that lacks facts the move
        needs, is checked by re-reading the records, because events arrive late and out of
        order."""
        if event.complete and event.status == referral.status:
            return referral.status  # agrees with what we have: nothing can move
        if (event.complete and event.status is not None
                and referral.status not in _CLOSED and _moves_forward(referral, event.status)):
            if event.object_type in (CrmObject.OPPORTUNITY, CrmObject.DEAL):
                referral.crm_opportunity_id = event.record_id
            converted = event.fields.get("ConvertedOpportunityId")
            if converted:
                referral.crm_opportunity_id = str(converted)
            referral.amount = event.amount if event.amount is not None else referral.amount
            referral.disqualified_reason = event.reason or referral.disqualified_reason
            return event.status
        snapshot = self.ctx.crm.read_referral(referral)
        referral.crm_opportunity_id = snapshot.opportunity_id or referral.crm_opportunity_id
        referral.amount = snapshot.amount if snapshot.amount is not None else referral.amount
        referral.disqualified_reason = snapshot.disqualified_reason
        return snapshot.status

    def _on_enter(self, referral: Referral, previous: ReferralStatus, program: Program,
                  effects: Effects) -> None:
        status, reward_key = referral.status, None
        context: dict[str, object] = {}
        if status in _MILESTONE_FOR:
            context, reward_key = self._reward(referral, _MILESTONE_FOR[status], program,
                                               effects)
        if previous is S.CLOSED_WON:
            context = self._claw_back(referral, program, effects)
        if status in _NOTICE_FOR:
            task = self._notify(referral, _NOTICE_FOR[status], program, context)
            if task is not None:
                effects.tasks.append(task.model_copy(update={"reward_key": reward_key}))

    def _count_open(self, referral: Referral, was_open: bool) -> None:
        is_open = referral.status not in _CLOSED
        if was_open != is_open and referral.owner_id:
            with self.ctx.store.counters.locked() as counters:
                counters.increment("open", {referral.owner_id: 1 if is_open else -1})

    def _reward(self, referral: Referral, milestone: Milestone, program: Program,
                effects: Effects) -> tuple[dict[str, object], str | None]:
        """Record the milestone's reward (once) and queue its CRM write; the notice's
        template context and the reward's key (None when the milestone earns nothing)."""
        ctx, now = self.ctx, self.ctx.clock()
        email = str(referral.referrer.email)
        earlier = [e for e in ctx.store.ledger.entries(referral_id=referral.id)
                   if e.milestone is milestone]
        if earlier:
            # A retry after a crash: the ledger has it; make sure the CRM has it too.
            entries = earlier
        else:
            # Tiers count qualified referrals including this one, whatever the store says yet.
            others = ctx.store.referrals.qualified_count(email, exclude_id=referral.id)
            facts = RewardFacts(
                referral=referral, milestone=milestone, referrer_qualified_count=others + 1,
                referrer_paid_this_year=ctx.store.ledger.earned_in_year(email, now.year),
                deal_amount=referral.amount, now=now)
            decision = rewards_for_milestone(facts, program, ctx.stamp)
            entries = [e for e in decision.entries if ctx.store.ledger.record(e, now)]
        effects.rewards.extend(e for e in entries if e.crm_id is None)
        if not entries:
            return {}, None
        total = sum((e.amount for e in entries), Decimal(0))
        return {"reward": _money(total, entries[0].currency), "tier": entries[0].tier or "",
                "reward_pending_approval": any(e.requires_approval for e in entries)}, \
            entries[0].key

    def _claw_back(self, referral: Referral, program: Program,
                   effects: Effects) -> dict[str, object]:
        ctx, now = self.ctx, self.ctx.clock()
        won = [e for e in ctx.store.ledger.entries(referral_id=referral.id)
               if e.milestone is Milestone.CLOSED_WON and e.state is not RewardState.REVERSED]
        decision = clawback(won, referral, now, program, ctx.stamp)
        for entry in decision.entries:
            ctx.store.ledger.update(entry, now)
        effects.rewards.extend(decision.entries)
        if not decision.entries:
            return {}
        total = sum((e.amount for e in decision.entries), Decimal(0))
        return {"reversed": _money(total, decision.entries[0].currency)}

    def _notify(self, referral: Referral, template: str, program: Program,
                extra: dict[str, object]) -> CrmTask | None:
        context = self.ctx.notice_context(referral, program) | extra
        context["reason"] = referral.disqualified_reason
        return self.ctx.notifier.notify(
            key=f"{referral.id}:{template}:{len(referral.history)}", template=template,
            recipient=str(referral.referrer.email), referral_id=referral.id,
            # No record id: the activity goes on the referral's current record (after
            # conversion the Opportunity; Salesforce refuses activities on converted Leads).
            policy=program.notifications, context=context, record_id=None,
            owner_id=referral.owner_id)

    def _crm_fields(self, referral: Referral) -> dict[str, object]:
        entries = self.ctx.store.ledger.entries(referral_id=referral.id)
        reward_status = ", ".join(f"{e.milestone.value}: {e.state.value}" for e in entries)
        return {"referral_status": referral.status.value, "reward_status": reward_status or None}


def _moves_forward(referral: Referral, target: ReferralStatus) -> bool:
    try:
        path_to(referral.status, target)
    except IllegalTransition:
        return False
    return True
