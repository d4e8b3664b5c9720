"""Intake: may this referral enter the program? Runs eligibility, validity, duplicate and
fraud checks (all of them, so the trace is complete), then decides accept / review / reject.
The referrer hears one stable code and one sentence; the trace keeps every check."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from referral_sync.crm import DuplicateCandidate, DuplicateKind, ReferrerContext
from referral_sync.models import Decision, IntroStrength, Referee
from referral_sync.program.schema import CrmMapping, Program, Verdict
from referral_sync.rules.conditions import FactView
from referral_sync.rules.duplicates import check_duplicates
from referral_sync.rules.eligibility import check_eligibility
from referral_sync.rules.findings import (
    REJECTION_ORDER,
    Finding,
    PolicyStamp,
    Rejection,
    Step,
    as_trace,
)
from referral_sync.rules.fraud import check_fraud
from referral_sync.rules.validity import check_validity

__all__ = ["IntakeDecision", "IntakeFacts", "IntakeOutcome", "Rejection", "evaluate_intake"]


class IntakeFacts(BaseModel):
    """Everything intake needs, read from the submission and the CRM beforehand.

    Counts exclude the referral being checked.
    """

    model_config = ConfigDict(frozen=True)

    referee: Referee
    referrer: ReferrerContext | None
    referrer_email: str
    duplicates: list[DuplicateCandidate] = Field(default_factory=list)
    referrals_today: int = Field(default=0, ge=0)
    referrals_this_month: int = Field(default=0, ge=0)
    other_referrers_of_referee: int = Field(default=0, ge=0)
    intro_strength: IntroStrength = IntroStrength.WEAK
    now: datetime


class IntakeOutcome(StrEnum):
    """What happens to the referral."""

    ACCEPT = "accept"
    REVIEW = "review"
    REJECT = "reject"


class IntakeDecision(Decision):
    """The intake verdict. ``message`` may be shown to the referrer as is."""

    outcome: IntakeOutcome
    rejection: Rejection | None = None
    code: str | None = None
    message: str | None = None
    duplicate_kind: DuplicateKind | None = None
    review_reasons: list[str] = Field(default_factory=list)


_DUPLICATE_MESSAGES = {
    DuplicateKind.CUSTOMER: "This company is already a customer, so the referral can't count.",
    DuplicateKind.OPEN_PIPELINE: (
        "Our team is already talking to this company, so the referral can't count."
    ),
    DuplicateKind.EARLIER_REFERRAL: "This company has already been referred to us recently.",
    DuplicateKind.CONTACT: "This person is already known to our team.",
}
_ACCEPTED = "Thank you! Your referral has been passed to our team."
_IN_REVIEW = "Thank you! We'll check a few details before passing your referral to our team."


def _duplicate_findings(
    facts: IntakeFacts, program: Program
) -> tuple[list[Finding], list[Step], str | None, DuplicateKind | None]:
    check = check_duplicates(
        facts.referee,
        facts.duplicates,
        referrer=facts.referrer,
        lookback_days=program.validity.duplicate_lookback_days,
        now=facts.now,
    )
    findings: list[Finding] = []
    kind = check.blocking.kind if check.blocking else None
    if kind is not None:
        findings.append(
            Finding(
                f"duplicate_{kind.value}",
                Verdict.BLOCK,
                Rejection.DUPLICATE,
                _DUPLICATE_MESSAGES[kind],
            )
        )
    if check.known_contact:
        findings.append(
            Finding(
                "known_contact",
                Verdict.REVIEW,
                Rejection.DUPLICATE,
                _DUPLICATE_MESSAGES[DuplicateKind.CONTACT],
            )
        )
    return findings, check.trace, check.same_company, kind


def _first_block(findings: list[Finding]) -> Finding | None:
    blocks = [f for f in findings if f.verdict is Verdict.BLOCK]
    for category in REJECTION_ORDER:
        for finding in blocks:
            if finding.rejection is category:
                return finding
    return None


def evaluate_intake(
    facts: IntakeFacts, program: Program, mapping: CrmMapping, stamp: PolicyStamp
) -> IntakeDecision:
    """Run every intake check and decide. Pure: same facts and policy, same decision."""
    trace: list[Step] = [("program", program.id, f"{program.name} ({program.kind.value})")]
    if not program.active:
        trace.append(("program.active", "block", "program_inactive: the program is switched off"))
        return IntakeDecision(
            policy_version=stamp.version,
            policy_hash=stamp.content_hash,
            trace=as_trace(trace),
            outcome=IntakeOutcome.REJECT,
            rejection=Rejection.INELIGIBLE,
            code="program_inactive",
            message="This referral program is not open right now.",
        )
    eligibility = check_eligibility(facts.referrer, program.eligibility, mapping, facts.now)
    dup_findings, dup_trace, same_company, dup_kind = _duplicate_findings(facts, program)
    cond_facts = FactView(
        facts.referee,
        facts.referrer,
        facts.intro_strength,
        facts.now,
        program.id,
        referrer_email=facts.referrer_email,
    )
    validity = check_validity(facts.referee, cond_facts, program.validity, same_company)
    fraud = check_fraud(
        facts.referee,
        facts.referrer,
        program.fraud,
        referrer_email=facts.referrer_email,
        referrals_today=facts.referrals_today,
        referrals_this_month=facts.referrals_this_month,
        other_referrers_of_referee=facts.other_referrers_of_referee,
    )
    trace.extend(eligibility.trace)
    trace.extend(validity.trace)
    trace.extend(fraud.trace)
    trace.extend(dup_trace)
    findings = [*eligibility.findings, *validity.findings, *fraud.findings, *dup_findings]
    return _decide(findings, trace, stamp, dup_kind)


def _decide(
    findings: list[Finding],
    trace: list[Step],
    stamp: PolicyStamp,
    dup_kind: DuplicateKind | None,
) -> IntakeDecision:
    reviews = [f.code for f in findings if f.verdict is Verdict.REVIEW]
    block = _first_block(findings)
    if block is not None:
        outcome, code, message = IntakeOutcome.REJECT, block.code, block.message
    elif reviews:
        outcome, code, message = IntakeOutcome.REVIEW, reviews[0], _IN_REVIEW
    else:
        outcome, code, message = IntakeOutcome.ACCEPT, None, _ACCEPTED
    if outcome is IntakeOutcome.REVIEW:
        detail = "review: " + ", ".join(reviews)
    else:
        detail = code or "every check passed"
    trace.append(("intake", outcome.value, detail))
    return IntakeDecision.model_validate(
        {
            "policy_version": stamp.version,
            "policy_hash": stamp.content_hash,
            "trace": as_trace(trace),
            "outcome": outcome,
            "rejection": block.rejection if block else None,
            "code": code,
            "message": message,
            "duplicate_kind": dup_kind
            if block and block.rejection is Rejection.DUPLICATE
            else None,
            "review_reasons": reviews,
        },
    )
