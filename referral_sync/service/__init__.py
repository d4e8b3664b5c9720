"""The service layer: use cases over the injected CRM port, store, clock and notifier.
It never imports a CRM adapter; ``referral_sync.app`` wires one in."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from referral_sync.models import ChangeEvent
from referral_sync.service.context import ServiceContext
from referral_sync.service.intake import INTAKE_PROVIDER, Intake, IntakeResult, Submission
from referral_sync.service.lifecycle import Lifecycle, Outcome
from referral_sync.service.routing import Router
from referral_sync.store import ReceiveResult

__all__ = ["IntakeResult", "Outcome", "ReferralService", "ServiceContext", "Submission"]

log = logging.getLogger(__name__)

#: Reconcile re-reads this much before its cursor: CRM timestamps and commits are not
#: perfectly ordered, and a re-read event is deduplicated by the inbox anyway.
RECONCILE_OVERLAP = timedelta(minutes=5)


@dataclass(frozen=True)
class ReconcileResult:
    """What one reconcile sweep found."""

    seen: int
    stored: int
    cursor: datetime | None


class ReferralService:
    """Submit referrals, apply CRM events, reconcile missed ones."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.owners = ctx.owners
        self.intake = Intake(ctx, Router(ctx.store, self.owners))
        self.lifecycle = Lifecycle(ctx)

    def submit(self, submission: Submission) -> IntakeResult:
        """Accept (or reject, raising) a referral; see ``Intake.submit``."""
        return self.intake.submit(submission)

    def handle(self, event: ChangeEvent) -> Outcome:
        """Process one inbox event (a CRM change, or a deferred intake)."""
        if event.provider == INTAKE_PROVIDER:
            referral = self.ctx.store.referrals.get(event.referral_id or "")
            if referral is None:
                return Outcome.NOT_A_REFERRAL
            if referral.crm_record_id is None:
                reasons = [str(r) for r in event.fields.get("review_reasons", [])]
                self.intake.complete(referral, review_reasons=reasons)
            return Outcome.APPLIED
        return self.lifecycle.apply(event)

    def receive(self, events: list[ChangeEvent]) -> ReceiveResult:
        """Store events durably in the inbox (one job each); duplicates are ignored."""
        return self.ctx.store.inbox.receive(events, self.ctx.clock())

    def reconcile(self, since: datetime | None = None) -> ReconcileResult:
        """Feed CRM changes since the cursor (minus an overlap) into the inbox, so a dropped
        webhook costs minutes, not a reward."""
        name = f"reconcile:{self.ctx.crm.provider}"
        cursor = since or self.ctx.store.settings.cursor(name)
        start = (cursor - RECONCILE_OVERLAP) if cursor else datetime(1970, 1, 1).astimezone()
        seen = stored = 0
        newest = cursor
        batch: list[ChangeEvent] = []
        for event in self.ctx.crm.list_changes(start):
            seen += 1
            batch.append(event)
            newest = max(newest, event.occurred_at) if newest else event.occurred_at
            if len(batch) >= 500:
                stored += self.receive(batch).stored
                batch = []
        if batch:
            stored += self.receive(batch).stored
        if newest:
            self.ctx.store.settings.set_cursor(name, newest)
        log.info("reconcile swept", extra={"seen": seen, "stored": stored})
        return ReconcileResult(seen=seen, stored=stored, cursor=newest)
