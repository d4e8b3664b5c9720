"""Validity of the referral itself: a usable work e-mail and company, the ideal customer
profile, and the same-company rule. Duplicates are in ``duplicates``; abuse in ``fraud``."""

from __future__ import annotations

from functools import partial

from referral_sync.models import Referee
from referral_sync.program.schema import Validity, Verdict
from referral_sync.rules.conditions import Facts, Notes, compile_condition, explain
from referral_sync.rules.duplicates import email_domain_kind, normalise_company, registrable_domain
from referral_sync.rules.findings import CheckResult, Rejection

_INVALID = Rejection.INVALID


def _email(result: CheckResult, referee: Referee, rules: Validity) -> None:
    domain = referee.domain
    if "." not in registrable_domain(domain):
        result.fire(
            "validity.email",
            Verdict.BLOCK,
            "invalid_email_domain",
            _INVALID,
            "The e-mail address doesn't have a real domain.",
            f"{domain} has no public suffix",
        )
        return
    kind = email_domain_kind(domain)
    if kind == "disposable":
        result.fire(
            "validity.disposable_domain",
            rules.disposable_domain,
            "disposable_email",
            Rejection.FRAUD,
            "That e-mail address is from a throw-away mailbox service.",
            f"{domain} is a disposable-mail domain",
        )
    elif kind == "free":
        result.fire(
            "validity.free_mail",
            rules.free_mail,
            "work_email_required",
            _INVALID,
            "Please give the person's work e-mail address.",
            f"{domain} is a free-mail provider",
        )
    else:
        result.passed("validity.email", f"{domain} is a work domain")


def check_validity(
    referee: Referee, facts: Facts, rules: Validity, same_company: str | None
) -> CheckResult:
    """Required fields, work e-mail, ICP and same-company checks, each one traced.

    ``same_company`` is the reason the duplicate check found the referee to be at the
    referrer's own company (another division), or None.
    """
    result = CheckResult()
    if normalise_company(referee.company):
        result.passed("validity.company", f"company {referee.company!r}")
    else:
        result.fire(
            "validity.company",
            Verdict.BLOCK,
            "invalid_company",
            _INVALID,
            "Please give the company's name.",
            "company name is only a legal form",
        )
    _email(result, referee, rules)
    if rules.icp is None:
        result.passed("validity.icp", "no ideal customer profile set")
    else:
        notes: Notes = []
        if compile_condition(rules.icp)(facts, notes):
            result.passed("validity.icp", partial(explain, notes))
        else:
            result.fire(
                "validity.icp",
                rules.icp_miss,
                "outside_icp",
                _INVALID,
                "This company is outside the kinds of company our program covers.",
                partial(explain, notes),
            )
    if same_company is None:
        result.passed("validity.same_company", "a different company from the referrer's")
    else:
        result.fire(
            "validity.same_company",
            rules.same_company,
            "same_company",
            _INVALID,
            "Referrals within your own company don't count in this program.",
            same_company,
        )
    return result
