"""Abuse checks (DESIGN.md §3, "Fraud"): self-referral, a referee who is already a contact of
the referrer's own account, velocity per day and month, and the same person referred by
several referrers. Disposable mailboxes are caught by ``validity``."""

from __future__ import annotations

from referral_sync.crm import ReferrerContext
from referral_sync.models import Referee
from referral_sync.program.schema import Fraud, Verdict
from referral_sync.rules.duplicates import registrable_domain
from referral_sync.rules.findings import CheckResult, Rejection

_FRAUD = Rejection.FRAUD


def _self_referral(referee: Referee, referrer: ReferrerContext | None, email: str) -> str | None:
    referee_email = str(referee.email).casefold()
    if referee_email == email.casefold():
        return "the referee's e-mail is the referrer's own"
    if referrer and referrer.name and referrer.name.casefold() == referee.full_name.casefold():
        own_domain = registrable_domain(referrer.email.rsplit("@", 1)[-1])
        if own_domain == registrable_domain(referee.domain):
            return "same name and e-mail domain as the referrer"
    return None


def _velocity(result: CheckResult, rules: Fraud, today: int, this_month: int) -> None:
    if today >= rules.max_per_referrer_per_day:
        result.fire(
            "fraud.max_per_referrer_per_day",
            Verdict.BLOCK,
            "velocity_day",
            Rejection.VELOCITY,
            f"You've reached today's limit of {rules.max_per_referrer_per_day} referrals; "
            "please send the rest tomorrow.",
            f"{today} already today",
        )
    else:
        result.passed(
            "fraud.max_per_referrer_per_day", f"{today} of {rules.max_per_referrer_per_day} today"
        )
    limit = rules.max_per_referrer_per_month
    if limit is not None and this_month >= limit:
        result.fire(
            "fraud.max_per_referrer_per_month",
            Verdict.BLOCK,
            "velocity_month",
            Rejection.VELOCITY,
            f"You've reached this month's limit of {limit} referrals.",
            f"{this_month} already this month",
        )
    elif limit is not None:
        result.passed("fraud.max_per_referrer_per_month", f"{this_month} of {limit} this month")


def check_fraud(
    referee: Referee,
    referrer: ReferrerContext | None,
    rules: Fraud,
    *,
    referrer_email: str,
    referrals_today: int,
    referrals_this_month: int,
    other_referrers_of_referee: int,
) -> CheckResult:
    """Every abuse check, each one traced. Counts exclude the referral being checked."""
    result = CheckResult()
    why = _self_referral(referee, referrer, referrer_email)
    if why:
        result.fire(
            "fraud.self_referral",
            rules.self_referral,
            "self_referral",
            _FRAUD,
            "You can't refer yourself.",
            why,
        )
    else:
        result.passed("fraud.self_referral", "referee is someone else")
    own_contacts = {e.casefold() for e in referrer.account_contact_emails} if referrer else set()
    if str(referee.email).casefold() in own_contacts:
        result.fire(
            "fraud.referee_in_referrer_account",
            rules.referee_in_referrer_account,
            "referee_in_referrer_account",
            _FRAUD,
            "This person is already a contact of your own company's account.",
            "referee e-mail is a contact of the referrer's account",
        )
    else:
        result.passed(
            "fraud.referee_in_referrer_account", "not a contact of the referrer's account"
        )
    _velocity(result, rules, referrals_today, referrals_this_month)
    if other_referrers_of_referee > 0:
        result.fire(
            "fraud.repeated_referee",
            rules.repeated_referee,
            "repeated_referee",
            _FRAUD,
            "This person has already been referred by someone else.",
            f"{other_referrers_of_referee} other referrer(s)",
        )
    else:
        result.passed("fraud.repeated_referee", "no other referrer named this person")
    return result
