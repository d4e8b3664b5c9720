"""Submitting a referral: validate, check duplicates, eligibility and fraud, create the referral
record in the CRM with attribution, route it, give the owner a first-action task, and tell
the referrer. A rejected referral writes nothing to the CRM."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from referral_sync.crm import (
    CrmRecordRef,
    CrmTask,
    DuplicateCandidate,
    DuplicateKind,
    IntakeLookup,
    IntakeSnapshot,
    Owner,
    ReferrerContext,
)
from referral_sync.errors import (
    ConfigurationError,
    CrmPermanentError,
    CrmRetryableError,
    DuplicateReferral,
    IneligibleReferrer,
    ReferralRejected,
    VelocityExceeded,
)
from referral_sync.models import (
    ChangeEvent,
    CrmObject,
    IntroStrength,
    Referee,
    Referral,
    Referrer,
    RoutingDecision,
    TraceStep,
)
from referral_sync.program.schema import Program
from referral_sync.rules import (
    IntakeDecision,
    IntakeFacts,
    IntakeOutcome,
    Rejection,
    email_domain_kind,
    evaluate_intake,
    normalise_company,
)
from referral_sync.service.context import ServiceContext
from referral_sync.service.routing import Router, named_owners

log = logging.getLogger(__name__)

#: Provider name of the inbox events that finish an intake whose CRM write was deferred.
INTAKE_PROVIDER = "intake"


class Submission(BaseModel):
    """A referral as a referrer submits it (JSON API, form or CLI)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    referrer_email: EmailStr
    referee: Referee
    intro_strength: IntroStrength = IntroStrength.WEAK
    program: str | None = Field(default=None, max_length=64)


@dataclass
class IntakeResult:
    """An accepted referral: its record, owner, and why it went there."""

    referral: Referral
    owner: Owner
    record: CrmRecordRef | None
    routing: RoutingDecision
    review_reasons: list[str] = field(default_factory=list)
    trace: list[TraceStep] = field(default_factory=list)


_REJECTION_ERRORS: dict[Rejection, type[ReferralRejected]] = {
    Rejection.DUPLICATE: DuplicateReferral,
    Rejection.INELIGIBLE: IneligibleReferrer,
    Rejection.VELOCITY: VelocityExceeded,
}


def new_referral_id() -> str:
    """A short, unguessable referral id."""
    return "ref_" + secrets.token_hex(8)


class Intake:
    """The submit use case."""

    def __init__(self, ctx: ServiceContext, router: Router) -> None:
        self.ctx = ctx
        self.router = router

    def submit(self, submission: Submission) -> IntakeResult:
        """Evaluate and, if accepted, create, route and announce a referral.

        Raises:
            ReferralRejected: (or its Duplicate/Ineligible/Velocity subclasses) when the
                policy refuses it; nothing is written anywhere.
            CrmRetryableError / CrmPermanentError: when the CRM fails.
        """
        ctx, now = self.ctx, self.ctx.clock()
        try:
            program = ctx.program.config.program(submission.program)
        except KeyError:
            raise ReferralRejected("unknown_program",
                                   f"there is no referral program {submission.program!r}") from None
        lookup = self._lookup(submission, program)
        found = ctx.crm.load_intake(lookup)
        ctx.owners.prime(found.owners)
        referrer_ctx = found.referrer
        decision = self._evaluate(submission, program, lookup, found)
        if decision.outcome is IntakeOutcome.REJECT:
            raise _rejection(decision)
        referee = submission.referee
        referral = _new_referral(submission, program.id, referrer_ctx, now)
        routed = self.router.route(
            routing=program.routing, stamp=ctx.stamp, referee=referee,
            intro_strength=submission.intro_strength, referrer=referrer_ctx,
            account_match=found.account_match, previous_owners=[], now=now,
            program_id=program.id)
        routing = routed.decision.model_copy(update={"owner_id": routed.owner.id})
        referral = referral.model_copy(update={
            "owner_id": routed.owner.id, "owner_name": routed.owner.name,
            "routing_reason": routing.reason,
            "policy_version": routing.policy_version, "policy_hash": routing.policy_hash,
            "first_action": routing.first_action})
        # Stored before the CRM write: if the CRM fails now, a job finishes the work later
        # (the create is idempotent on the referral id), so an accepted referral is never lost.
        ctx.store.referrals.save(referral, now, company_key=normalise_company(referee.company))
        result = IntakeResult(referral=referral, owner=routed.owner, record=None,
                              routing=routing, review_reasons=decision.review_reasons,
                              trace=decision.trace + routing.trace)
        result.record = self._complete_or_defer(referral, decision.review_reasons)
        return result

    def _complete_or_defer(self, referral: Referral,
                           review_reasons: list[str]) -> CrmRecordRef | None:
        """The referral's CRM record, or None when the CRM failed and a job will finish it."""
        try:
            return self.complete(referral, review_reasons=review_reasons)
        except (CrmRetryableError, CrmPermanentError) as exc:
            log.warning("CRM write deferred", extra={"referral_id": referral.id,
                                                     "error": type(exc).__name__})
            now = self.ctx.clock()
            self.ctx.store.inbox.receive([ChangeEvent(
                provider=INTAKE_PROVIDER, event_id=f"create:{referral.id}",
                object_type=CrmObject.LEAD, record_id=referral.id, referral_id=referral.id,
                occurred_at=now, fields={"review_reasons": review_reasons})], now)
            return None

    def complete(self, referral: Referral, *, review_reasons: list[str]) -> CrmRecordRef:
        """Create the CRM record, the owner's first-action task and the referrer's notice.

        Every step is idempotent, so a retried job repeats none of them."""
        ctx = self.ctx
        program = ctx.program_for(referral)
        owner = self.router.owners.get(referral.owner_id or program.routing.fallback)
        if owner is None:
            raise ConfigurationError(f"owner {referral.owner_id!r} no longer exists in the CRM")
        routing = RoutingDecision(
            owner_id=owner.id, owner_kind=owner.kind, strategy="stored",
            reason=referral.routing_reason or "", first_action=referral.first_action or "email",
            policy_version=referral.policy_version or ctx.stamp.version,
            policy_hash=referral.policy_hash or ctx.stamp.content_hash)
        # The tasks go on the new record in the same CRM call that creates it.
        tasks = [self._first_action_task(referral, owner, program, review_reasons),
                 self._announce(referral, owner, program)]
        record = ctx.crm.create_referral(referral, routing,
                                         tasks=[t for t in tasks if t is not None])
        referral.crm_record_id = record.record_id
        ctx.store.referrals.save(referral, ctx.clock())
        return record

    def _lookup(self, submission: Submission, program: Program) -> IntakeLookup:
        referee = submission.referee
        work = email_domain_kind(referee.domain) == "work"
        return IntakeLookup(
            referrer_email=str(submission.referrer_email), referee_email=str(referee.email),
            domain=referee.domain if work else None,
            company_key=normalise_company(referee.company),
            since=self.ctx.clock() - timedelta(days=program.validity.duplicate_lookback_days),
            owner_refs=frozenset(named_owners(program.routing)),
            match_account=program.routing.existing_account_match and work,
            account_team=program.routing.account_team_role is not None)

    def _evaluate(self, submission: Submission, program: Program, lookup: IntakeLookup,
                  found: IntakeSnapshot) -> IntakeDecision:
        ctx, now = self.ctx, self.ctx.clock()
        referee, email = submission.referee, lookup.referee_email
        referrer_email = lookup.referrer_email
        domain, company_key, since = lookup.domain, lookup.company_key, lookup.since
        duplicates = list(found.duplicates)
        duplicates += [
            DuplicateCandidate(kind=DuplicateKind.EARLIER_REFERRAL, matched_on="referral",
                               record_type="Referral", record_id=r.id,
                               created_at=r.submitted_at, company=r.referee.company,
                               domain=r.referee.domain, email=str(r.referee.email))
            for r in ctx.store.referrals.earlier(email, domain, company_key, since)
        ]
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        facts = IntakeFacts(
            referee=referee, referrer=found.referrer,
            referrer_email=referrer_email, duplicates=duplicates,
            referrals_today=ctx.store.referrals.count_by_referrer_since(referrer_email, day_start),
            referrals_this_month=ctx.store.referrals.count_by_referrer_since(
                referrer_email, day_start.replace(day=1)),
            other_referrers_of_referee=ctx.store.referrals.other_referrers_of(
                email, referrer_email),
            intro_strength=submission.intro_strength, now=now,
        )
        return evaluate_intake(facts, program, ctx.program.config.crm, ctx.stamp)

    def _first_action_task(self, referral: Referral, owner: Owner, program: Program,
                           review_reasons: list[str]) -> CrmTask:
        verb = "Call" if referral.first_action == "call" else "E-mail"
        review = ("\nReview before working it: " + "; ".join(review_reasons)
                  if review_reasons else "")
        return CrmTask(
            subject=f"{verb} {referral.referee.full_name} (referred by "
                    f"{referral.referrer.name or 'a customer'})",
            owner_id=owner.id, kind=referral.first_action or "",
            due=referral.submitted_at + timedelta(hours=program.routing.sla.first_touch_hours),
            description=f"Why you: {referral.routing_reason}{review}",
            key=f"{referral.id}:first-action")

    def _announce(self, referral: Referral, owner: Owner, program: Program) -> CrmTask | None:
        context = self.ctx.notice_context(referral, program) | {"owner_name": owner.name}
        return self.ctx.notifier.notify(
            key=f"{referral.id}:submitted", template="submitted",
            recipient=str(referral.referrer.email), referral_id=referral.id,
            policy=program.notifications, context=context,
            record_id=referral.crm_record_id, owner_id=owner.id)


def _rejection(decision: IntakeDecision) -> ReferralRejected:
    """The error a refused submission raises (its class says which kind of refusal)."""
    rejection = decision.rejection or Rejection.INVALID
    error = _REJECTION_ERRORS.get(rejection, ReferralRejected)
    log.info("referral rejected", extra={"code": decision.code})
    return error(decision.code or rejection.value, decision.message or "not accepted",
                 **({"kind": decision.duplicate_kind.value} if decision.duplicate_kind else {}))


def _new_referral(submission: Submission, program_id: str,
                  referrer: ReferrerContext | None, now: datetime) -> Referral:
    """An accepted submission as a referral, before routing."""
    return Referral(
        id=new_referral_id(), program=program_id, referee=submission.referee,
        intro_strength=submission.intro_strength, submitted_at=now,
        referrer=Referrer(
            email=submission.referrer_email,
            name=referrer.name if referrer else "",
            contact_id=referrer.contact_id if referrer else None,
            account_id=referrer.account_id if referrer else None,
            account_name=referrer.account_name if referrer else None,
        ),
    )
