"""Referrer eligibility (DESIGN.md §3): paying customer in good standing, account old
enough, not at-risk / in collections / in dispute / trial / free, actively using the product
when the CRM has a usage field. Every failed check has a stable code and a sentence the
referrer may read about their own account."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

from referral_sync.crm import ReferrerContext
from referral_sync.program.schema import CrmMapping, Eligibility, Verdict
from referral_sync.rules._memo import cached_on
from referral_sync.rules.findings import CheckResult, Rejection

_SEPARATORS = re.compile(r"[\s\-/]+")
_BLOCK, _INELIGIBLE = Verdict.BLOCK, Rejection.INELIGIBLE


@lru_cache(maxsize=4096)  # a CRM has a handful of statuses and account types
def _status_key(value: str) -> str:
    """``"At Risk"``, ``"at-risk"`` and ``"at_risk"`` are the same status."""
    return _SEPARATORS.sub("_", value.strip().casefold())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def is_paying_customer(referrer: ReferrerContext, mapping: CrmMapping) -> bool:
    """The adapter's verdict, or an account type starting with the mapped customer prefix."""
    account_type = referrer.account_type or ""
    return referrer.is_paying_customer or account_type.startswith(mapping.customer_type_prefix)


def _tenure(
    result: CheckResult, rules: Eligibility, referrer: ReferrerContext, now: datetime
) -> None:
    if rules.min_account_age_days == 0:
        result.passed("eligibility.min_account_age_days", "no minimum tenure")
        return
    since = referrer.customer_since
    days = (_aware(now) - _aware(since)).days if since else None
    if days is None or days < rules.min_account_age_days:
        shown = "unknown" if days is None else f"{days} days"
        result.fire(
            "eligibility.min_account_age_days",
            _BLOCK,
            "account_too_new",
            _INELIGIBLE,
            f"Referrals open once your company has been a customer for "
            f"{rules.min_account_age_days} days.",
            f"customer for {shown}, needs {rules.min_account_age_days}",
        )
    else:
        result.passed("eligibility.min_account_age_days", f"customer for {days} days")


def _standing(result: CheckResult, rules: Eligibility, referrer: ReferrerContext) -> None:
    excluded = cached_on(
        rules, "_rs_excluded", lambda: frozenset(_status_key(s) for s in rules.excluded_statuses)
    )
    hit = None
    for value in (referrer.account_status, referrer.account_type):
        if value and _status_key(value) in excluded:
            hit = value
            break
    if hit:
        result.fire(
            "eligibility.excluded_statuses",
            _BLOCK,
            "account_status",
            _INELIGIBLE,
            "Your company's account can't take part in the referral program right now.",
            f"account is {hit!r}",
        )
    else:
        result.passed(
            "eligibility.excluded_statuses",
            f"status {referrer.account_status or 'empty'} is in good standing",
        )


def _usage(
    result: CheckResult, rules: Eligibility, referrer: ReferrerContext, mapping: CrmMapping
) -> None:
    if not rules.require_active_usage or mapping.usage_field is None:
        result.passed("eligibility.require_active_usage", "skipped: no usage field mapped")
    elif referrer.usage_active is None:
        result.passed("eligibility.require_active_usage", "skipped: usage field is empty")
    elif not referrer.usage_active:
        result.fire(
            "eligibility.require_active_usage",
            _BLOCK,
            "inactive_usage",
            _INELIGIBLE,
            "Referrals count for companies actively using the product.",
            f"{mapping.usage_field} says the account is not active",
        )
    else:
        result.passed("eligibility.require_active_usage", "account actively uses the product")


def check_eligibility(
    referrer: ReferrerContext | None, rules: Eligibility, mapping: CrmMapping, now: datetime
) -> CheckResult:
    """Every eligibility check on the referrer, each one traced."""
    result = CheckResult()
    if referrer is None:
        if rules.require_known_contact:
            result.fire(
                "eligibility.require_known_contact",
                _BLOCK,
                "referrer_unknown",
                _INELIGIBLE,
                "We couldn't find you as a contact of one of our customers, so we can't "
                "count this referral.",
                "no CRM contact has the referrer's e-mail",
            )
        else:
            result.passed("eligibility.require_known_contact", "unknown referrers allowed")
        return result
    result.passed("eligibility.require_known_contact", f"contact {referrer.contact_id}")
    if not rules.require_paying_customer:
        result.passed("eligibility.require_paying_customer", "not required")
    elif is_paying_customer(referrer, mapping):
        result.passed(
            "eligibility.require_paying_customer",
            f"account type {referrer.account_type or 'customer'}",
        )
    else:
        result.fire(
            "eligibility.require_paying_customer",
            _BLOCK,
            "not_paying_customer",
            _INELIGIBLE,
            "Referrals count once your company is a paying customer.",
            f"account type {referrer.account_type or 'empty'}",
        )
    _tenure(result, rules, referrer, now)
    _standing(result, rules, referrer)
    _usage(result, rules, referrer, mapping)
    return result
