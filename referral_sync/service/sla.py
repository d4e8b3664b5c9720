"""SLA clocks (DESIGN.md §3): a first-touch reminder when the owner has not touched a referral
within ``first_touch_hours``, a re-route (``rules.sla_reroute``, never back to a previous
owner) after ``reroute_after_hours``, notices for rewards not fulfilled in time, and the
referrers' monthly digest.

Every effect is keyed (task keys, outbox keys, the digest cursor), so a check that runs twice,
on two nodes or after a crash, does each thing once."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from referral_sync.crm import CrmTask
from referral_sync.errors import ReferralSyncError
from referral_sync.models import (
    OwnerKind,
    Referral,
    ReferralStatus,
    RewardEntry,
    RewardState,
    RewardType,
)
from referral_sync.notify import TemplateRenderer
from referral_sync.program.schema import Program
from referral_sync.rules import email_domain_kind
from referral_sync.service.context import ServiceContext
from referral_sync.service.routing import Router
from referral_sync.store import OutboxMessage

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
#: Rewards paid as credit follow the business-day clock; the rest the payment clock.
_CREDIT_TYPES = {RewardType.ACCOUNT_CREDIT, RewardType.DISCOUNT}
_OPEN_REWARD = [RewardState.EARNED, RewardState.APPROVED]
DIGEST_CURSOR = "digest:last_period"


def add_business_days(start: datetime, days: int) -> datetime:
    """``start`` plus ``days`` working days (Monday to Friday)."""
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current


def reward_due(entry: RewardEntry, program: Program) -> datetime:
    """When the playbook says ``entry`` must be fulfilled: credit within N business days,
    payment within M days."""
    policy = program.notifications
    if entry.reward_type in _CREDIT_TYPES:
        return add_business_days(entry.earned_at, policy.credit_business_days)
    return entry.earned_at + timedelta(days=policy.payment_days)


@dataclass
class SlaReport:
    """What one SLA pass did."""

    reminded: int = 0
    rerouted: int = 0
    adopted: int = 0
    overdue_rewards: int = 0
    failed: int = 0


class SlaChecks:
    """The periodic SLA pass over open referrals and unfulfilled rewards."""

    def __init__(self, ctx: ServiceContext, router: Router) -> None:
        self.ctx = ctx
        self.router = router

    def run(self) -> SlaReport:
        """Check every untouched referral and every open reward once."""
        report = SlaReport()
        for referral in self.ctx.store.referrals.with_status([ReferralStatus.SUBMITTED]):
            try:
                self._check_referral(referral, report)
            except ReferralSyncError as exc:
                # The next pass tries again; one bad record must not stop the others.
                report.failed += 1
                log.warning("SLA check failed", extra={"referral_id": referral.id,
                                                       "error": type(exc).__name__})
        report.overdue_rewards = self._overdue_rewards()
        if report.reminded or report.rerouted or report.overdue_rewards:
            log.info("SLA pass", extra=vars(report))
        return report

    def _check_referral(self, referral: Referral, report: SlaReport) -> None:
        if referral.crm_record_id is None or referral.owner_id is None:
            return  # the CRM write is still queued; its clock starts once the record exists
        now = self.ctx.clock()
        sla = self.ctx.program_for(referral).routing.sla
        waited = now - (referral.assigned_at or referral.submitted_at)
        if waited < sla.first_touch_hours * HOUR:
            return
        owner = self.router.owners.get(referral.owner_id)  # cached: no API call each pass
        if owner is None or owner.kind is OwnerKind.QUEUE:
            return  # a queue has nobody to chase; the team works it from the queue view
        snapshot = self.ctx.crm.read_referral(referral)
        if snapshot.touched or snapshot.status is not ReferralStatus.SUBMITTED:
            return  # worked in time, or a change event is on its way
        if snapshot.owner_id and snapshot.owner_id != referral.owner_id:
            # Someone reassigned it in the CRM (or our re-route reached the CRM but not the
            # store): the CRM is the system of record, and the clock restarts.
            self._assign(referral, snapshot.owner_id, None, now, reason=None)
            self.ctx.store.referrals.save(referral, now)
            report.adopted += 1
            return
        if waited >= sla.reroute_after_hours * HOUR:
            if self._reroute(referral, now):
                report.rerouted += 1
            return
        self.ctx.crm.create_task(CrmTask(
            subject=f"Overdue: first touch on referral {referral.referee.full_name}",
            owner_id=owner.id, what_id=referral.crm_record_id, kind="task", due=now,
            description=f"Referrals get a first {referral.first_action or 'e-mail'} within "
                        f"{sla.first_touch_hours} h; it is re-routed after "
                        f"{sla.reroute_after_hours} h.",
            key=f"{referral.id}:sla-first-touch:{owner.id}"))
        report.reminded += 1

    def _reroute(self, referral: Referral, now: datetime) -> bool:
        ctx, program = self.ctx, self.ctx.program_for(referral)
        referee = referral.referee
        referrer = ctx.crm.load_referrer(str(referral.referrer.email))
        account_match = None
        if program.routing.existing_account_match and email_domain_kind(referee.domain) == "work":
            account_match = ctx.crm.find_account_by_domain(referee.domain)
        current = referral.owner_id
        assert current is not None
        routed = self.router.route(
            routing=program.routing, stamp=ctx.stamp, referee=referee,
            intro_strength=referral.intro_strength, referrer=referrer,
            account_match=account_match, previous_owners=list(referral.previous_owner_ids),
            now=now, reroute_from=current, program_id=program.id)
        if routed.owner.id == current:
            return False  # only the fallback queue was left, and it has it already
        with ctx.store.counters.locked() as counters:
            counters.increment("open", {current: -1})
        self._assign(referral, routed.owner.id, routed.owner.name, now,
                     reason=routed.decision.reason)
        # CRM first: if we die before saving, the next pass sees the new owner in the CRM
        # and adopts it instead of routing a second time.
        ctx.crm.update_referral(referral)
        ctx.store.referrals.save(referral, now)
        assert referral.crm_record_id is not None
        verb = "Call" if referral.first_action == "call" else "E-mail"
        ctx.crm.create_task(CrmTask(
            subject=f"{verb} {referee.full_name} (referral re-routed to you)",
            owner_id=routed.owner.id, what_id=referral.crm_record_id,
            kind=referral.first_action or "", key=f"{referral.id}:first-action:{routed.owner.id}",
            due=now + timedelta(hours=program.routing.sla.first_touch_hours),
            description=f"Why you: {routed.decision.reason}"))
        log.info("referral re-routed", extra={"referral_id": referral.id, "from_owner": current,
                                              "to_owner": routed.owner.id})
        return True

    @staticmethod
    def _assign(referral: Referral, owner_id: str, owner_name: str | None, now: datetime,
                reason: str | None) -> None:
        if referral.owner_id and referral.owner_id not in referral.previous_owner_ids:
            referral.previous_owner_ids.append(referral.owner_id)
        referral.owner_id = owner_id
        referral.owner_name = owner_name
        referral.assigned_at = now
        if reason:
            referral.routing_reason = reason

    def _overdue_rewards(self) -> int:
        ctx, now, overdue = self.ctx, self.ctx.clock(), 0
        for entry in ctx.store.ledger.entries(states=_OPEN_REWARD):
            referral = ctx.store.referrals.get(entry.referral_id)
            if referral is None or now <= reward_due(entry, ctx.program_for(referral)):
                continue
            overdue += 1
            record = referral.crm_opportunity_id or referral.crm_record_id
            if not (record and referral.owner_id):
                continue
            try:
                ctx.crm.create_task(CrmTask(
                    subject=f"Reward overdue: {entry.currency} {entry.amount:,.2f} "
                            f"({entry.milestone.value}) for "
                            f"{referral.referrer.name or 'the referrer'}",
                    owner_id=referral.owner_id, what_id=record, kind="task", due=now,
                    description=f"Earned {entry.earned_at:%Y-%m-%d}; still {entry.state.value}. "
                                "Fulfil it or record why not.",
                    key=f"{entry.key}:overdue"))
            except ReferralSyncError as exc:
                log.warning("overdue reward notice failed",
                            extra={"referral_id": referral.id, "error": type(exc).__name__})
        return overdue


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class Digests:
    """The monthly summary each active referrer receives (template ``digest``)."""

    def __init__(self, ctx: ServiceContext, renderer: TemplateRenderer | None = None) -> None:
        self.ctx = ctx
        self.renderer = renderer or TemplateRenderer()

    def run(self) -> int:
        """Queue last month's digests if not done yet; how many were queued."""
        store, now = self.ctx.store, self.ctx.clock()
        end = _month_start(now)
        start = _month_start(end - timedelta(days=1))
        done = store.settings.cursor(DIGEST_CURSOR)
        if done is not None and done >= start:
            return 0
        by_referrer: dict[str, list[Referral]] = defaultdict(list)
        for referral in store.referrals.list():
            by_referrer[str(referral.referrer.email).lower()].append(referral)
        queued = sum(self._digest(email, refs, start, end) for email, refs in
                     sorted(by_referrer.items()))
        store.settings.set_cursor(DIGEST_CURSOR, start)
        log.info("monthly digests queued", extra={"period": f"{start:%Y-%m}", "queued": queued})
        return queued

    def _digest(self, email: str, referrals: list[Referral], start: datetime,
                end: datetime) -> bool:
        def within(moment: datetime | None) -> bool:
            return moment is not None and start <= moment < end

        submitted = sum(within(r.submitted_at) for r in referrals)
        qualified = sum(within(r.reached_at(ReferralStatus.QUALIFIED)) for r in referrals)
        won = sum(within(r.reached_at(ReferralStatus.CLOSED_WON)) for r in referrals)
        entries = self.ctx.store.ledger.entries(referrer_email=email)
        pending = [e for e in entries if e.state in _OPEN_REWARD]
        if not (submitted or qualified or won or pending):
            return False
        currency = entries[0].currency if entries else "USD"
        earned = self.ctx.store.ledger.earned_in_year(email, start.year)
        pending_total = sum((e.amount for e in pending), Decimal(0))
        program = self.ctx.program_for(referrals[0])
        locale = program.notifications.default_locale
        subject, body = self.renderer.render("digest", locale, {
            "period": f"{start:%Y-%m}", "referrer_name": referrals[0].referrer.name or "there",
            "submitted": submitted, "qualified": qualified, "won": won,
            "earned": f"{currency} {earned:,.2f}", "pending": f"{currency} {pending_total:,.2f}",
            "portal_url": self.ctx.links.portal_url(email)})
        return self.ctx.store.outbox.add(OutboxMessage(
            key=f"digest:{email}:{start:%Y-%m}", referral_id=None, channel="email",
            template="digest", locale=locale.value, recipient=email, subject=subject, body=body,
            state="pending" if "email" in program.notifications.channels else "logged",
        ), self.ctx.clock())
