"""Referral history for the simulator: a CSV export, or a generated, seeded history.

CSV columns (a header row is required; only the first five are mandatory, the others may
be left empty):

==========================  =================================================================
``id``                      referral id
``submitted_at``            ISO date or date-time (UTC when no offset)
``referee_name``            the referred person's full name
``referee_email``           their work e-mail
``referee_company``         their company
``referee_country``         ISO country code, e.g. ``DE``
``referee_industry``        free text
``referee_employees``       whole number
``intro_strength``          ``strong`` or ``weak`` (default)
``program``                 program id (default: the policy's default program)
``referrer_email``          the referrer's e-mail (mandatory)
``referrer_name``           their name
``referrer_account``        their account's name; empty = not a CRM contact
``referrer_domain``         their account's domain
``referrer_account_type``   e.g. ``Customer - Direct``, ``Channel Partner / Reseller``
``referrer_customer_since`` ISO date
``referrer_status``         account status (``at_risk``, ``collections`` …); empty = good
``referrer_owner``          owner (AE) of the referrer's account
``account_owner``           owner of an existing account matching the referee's domain
``duplicate``               ``customer`` or ``open_pipeline`` when the CRM had one then
``qualified_at``            when it qualified (empty = never)
``closed_won_at``           when the deal was won (empty = not won)
``deal_amount``             first-year amount of the won deal
==========================  =================================================================
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from referral_sync.crm import DuplicateCandidate, DuplicateKind, ReferrerContext
from referral_sync.errors import ConfigurationError
from referral_sync.models import IntroStrength, Referee
from referral_sync.simulate import SimulationCase

REQUIRED_COLUMNS = (
    "id",
    "submitted_at",
    "referee_name",
    "referee_email",
    "referee_company",
    "referrer_email",
)


def _moment(text: str) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _referrer(row: dict[str, str]) -> ReferrerContext | None:
    if not row.get("referrer_account"):
        return None
    account_type = row.get("referrer_account_type") or "Customer - Direct"
    return ReferrerContext(
        contact_id=f"contact:{row['referrer_email']}",
        email=row["referrer_email"],
        name=row.get("referrer_name", ""),
        account_id=f"account:{row['referrer_account']}",
        account_name=row["referrer_account"],
        account_domain=row.get("referrer_domain") or None,
        is_paying_customer=account_type.startswith("Customer"),
        account_type=account_type,
        customer_since=_moment(row.get("referrer_customer_since", "")),
        account_status=row.get("referrer_status") or None,
        owner_id=row.get("referrer_owner") or None,
    )


def _case(row: dict[str, str]) -> SimulationCase:
    first, _, last = row["referee_name"].strip().partition(" ")
    employees = row.get("referee_employees")
    duplicate = row.get("duplicate")
    owner = row.get("account_owner")
    amount = row.get("deal_amount")
    return SimulationCase(
        id=row["id"],
        program=row.get("program") or None,
        submitted_at=_moment(row["submitted_at"]),
        referee=Referee(
            first_name=first,
            last_name=last or "-",
            email=row["referee_email"],
            company=row["referee_company"],
            country=row.get("referee_country") or None,
            industry=row.get("referee_industry") or None,
            employees=int(employees) if employees else None,
        ),
        referrer_email=row["referrer_email"],
        referrer=_referrer(row),
        intro_strength=IntroStrength(row.get("intro_strength") or "weak"),
        account_match=ReferrerContext(contact_id="-", email="-", owner_id=owner) if owner else None,
        duplicates=[
            DuplicateCandidate(
                kind=DuplicateKind(duplicate),
                matched_on="domain",
                record_type="Account",
                record_id="csv",
            )
        ]
        if duplicate
        else [],
        qualified_at=_moment(row.get("qualified_at", "")),
        closed_won_at=_moment(row.get("closed_won_at", "")),
        deal_amount=Decimal(amount) if amount else None,
    )


def read_history_csv(lines: Iterable[str]) -> Iterator[SimulationCase]:
    """Cases from CSV text (see the module docstring for the columns).

    Raises:
        ConfigurationError: naming the line and the problem, for a missing column or a bad
            value.
    """
    reader = csv.DictReader(lines)
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ConfigurationError(f"history CSV lacks column(s): {', '.join(missing)}")
    for row in reader:
        clean = {k: (v or "").strip() for k, v in row.items() if k}
        try:
            yield _case(clean)
        except (ValidationError, ValueError, ArithmeticError) as exc:
            raise ConfigurationError(
                f"history CSV line {reader.line_num}: {exc}".splitlines()[0],
                [f"line {reader.line_num}: {exc}"],
            ) from exc


_COUNTRIES = (
    ["US"] * 30
    + ["GB"] * 10
    + ["DE"] * 12
    + ["AT"] * 3
    + ["CH"] * 3
    + ["FR"] * 8
    + ["CA"] * 5
    + ["IE"] * 2
    + ["MY"] * 4
    + ["SG"] * 3
    + ["BR"] * 4
    + ["IN"] * 4
    + ["AU"] * 4
    + ["NL"] * 4
    + ["TH"] * 2
    + ["ID"] * 2
)
_INDUSTRIES = ["Software", "Fintech", "Manufacturing", "Retail", "Healthcare", "Logistics"]
_SYLLABLES = [
    "nor",
    "vel",
    "tri",
    "cas",
    "lum",
    "ori",
    "zen",
    "pax",
    "qua",
    "bri",
    "sol",
    "dex",
    "mar",
    "kin",
    "tor",
    "ly",
    "on",
    "ix",
    "ra",
    "io",
]
_SUFFIXES = ["GmbH", "Inc.", "Ltd", "Sdn Bhd", "S.A.", "LLC", "", "Pty Ltd", "BV", "AG"]
_FIRST = ["Dana", "Lee", "Aisha", "Jonas", "Mei", "Omar", "Sofia", "Ravi", "Lena", "Tom"]
_LAST = ["Tan", "Schmidt", "Garcia", "Smith", "Rahman", "Dubois", "Kowalski", "Ng", "Berg"]


def _company(rnd: random.Random) -> tuple[str, str]:
    stem = "".join(rnd.choice(_SYLLABLES) for _ in range(rnd.randint(3, 4)))
    name = f"{stem.capitalize()} {rnd.choice(_SUFFIXES)}".strip()
    return name, f"{stem}.{rnd.choice(['com', 'io', 'de', 'co.uk', 'com.my'])}"


def _referrers(rnd: random.Random, start: datetime) -> list[ReferrerContext]:
    people = []
    for i in range(600):
        roll = rnd.random()
        name, domain = _company(rnd)
        people.append(
            ReferrerContext.model_construct(
                contact_id=f"003C{i:05d}",
                email=f"champion{i}@{domain}",
                name=f"Champion {i}",
                account_id=f"001A{i:05d}",
                account_name=name,
                account_domain=domain,
                is_paying_customer=roll > 0.05,
                account_type="Customer - Direct" if roll > 0.05 else "Prospect",
                customer_since=start - timedelta(days=rnd.choice([30, 200, 400, 900])),
                account_status="at_risk" if 0.05 < roll < 0.08 else None,
                owner_id=f"005AE{rnd.randint(1, 20):02d}",
                owner_active=rnd.random() > 0.05,
                account_team={"Customer Success Manager": f"005CSM{rnd.randint(1, 8):02d}"},
                usage_active=None,
                account_contact_emails=[],
                fields={},
            )
        )
    return people


def _referee(rnd: random.Random, companies: list[tuple[str, str]]) -> Referee:
    if companies and rnd.random() < 0.15:  # the same company referred again, maybe by another
        name, domain = rnd.choice(companies)
    else:
        name, domain = _company(rnd)
        companies.append((name, domain))
    roll = rnd.random()
    mail_domain = "gmail.com" if roll < 0.07 else "mailinator.com" if roll < 0.08 else domain
    first, last = rnd.choice(_FIRST), rnd.choice(_LAST)
    # Built without validation: the generator only makes well-formed values, and e-mail
    # validation would dominate the time to generate 100,000 cases.
    return Referee.model_construct(
        first_name=first,
        last_name=last,
        email=f"{first}.{last}{rnd.randint(1, 99)}@{mail_domain}".lower(),
        company=name,
        country=rnd.choice(_COUNTRIES),
        industry=rnd.choice(_INDUSTRIES),
        employees=int(rnd.lognormvariate(4.5, 1.6)),
        phone=None,
        title=None,
        note=None,
    )


def _outcome(rnd: random.Random, submitted: datetime) -> dict[str, Any]:
    if rnd.random() > 0.45:
        return {}
    late = rnd.random() < 0.06
    qualified = submitted + timedelta(days=rnd.randint(95, 150) if late else rnd.randint(1, 60))
    if rnd.random() > 0.4:
        return {"qualified_at": qualified}
    return {
        "qualified_at": qualified,
        "closed_won_at": qualified + timedelta(days=rnd.randint(14, 120)),
        "deal_amount": Decimal(rnd.randint(5, 200) * 1000),
    }


def _crm_context(rnd: random.Random, roll: float) -> dict[str, Any]:
    """What the CRM knew: 5% an existing account owns the domain, 3% the company is a
    customer, 4% it is in open pipeline."""
    if roll < 0.05:
        owner = f"005AE{rnd.randint(1, 20):02d}"
        match = ReferrerContext.model_construct(
            contact_id="-",
            email="-",
            owner_id=owner,
            owner_active=True,
            account_team={},
            fields={},
            account_contact_emails=[],
            account_name="existing account",
            account_id="001EXIST",
        )
        return {"account_match": match, "duplicates": []}
    if roll < 0.12:
        kind = DuplicateKind.CUSTOMER if roll < 0.08 else DuplicateKind.OPEN_PIPELINE
        found = DuplicateCandidate(
            kind=kind, matched_on="domain", record_type="Account", record_id="generated"
        )
        return {"account_match": None, "duplicates": [found]}
    return {"account_match": None, "duplicates": []}


def generate_history(
    n: int, seed: int, *, start: datetime | None = None
) -> Iterator[SimulationCase]:
    """``n`` plausible referrals over a year from ``start``, the same for the same seed:
    600 customer referrers, repeat companies, free-mail and throw-away addresses, existing
    customers and pipeline, strong and weak intros, and qualification/close outcomes."""
    rnd = random.Random(seed)
    begin = start or datetime(2026, 1, 1, tzinfo=UTC)
    referrers = _referrers(rnd, begin)
    companies: list[tuple[str, str]] = []
    offsets = sorted(rnd.uniform(0, 365 * 86400) for _ in range(n))
    for number, offset in enumerate(offsets):
        submitted = begin + timedelta(seconds=offset)
        referrer = rnd.choice(referrers)
        roll = rnd.random()
        yield SimulationCase.model_construct(
            id=f"R{number + 1:06d}",
            program=None,
            submitted_at=submitted,
            referee=_referee(rnd, companies),
            referrer_email=referrer.email,
            referrer=referrer if rnd.random() > 0.02 else None,
            intro_strength=IntroStrength.STRONG if rnd.random() < 0.35 else IntroStrength.WEAK,
            **_crm_context(rnd, roll),
            **{
                "qualified_at": None,
                "closed_won_at": None,
                "deal_amount": None,
                **_outcome(rnd, submitted),
            },
        )
