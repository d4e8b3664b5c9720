"""Reads at intake: duplicate candidates, the referrer's context, the account owning a domain.

:meth:`Lookups.load_intake` answers a whole submission in two searches: one for contacts
(the referee by e-mail and by domain, and the referrer by e-mail, as three OR-ed filter
groups) and one for companies (the referee's domain and company name, and the referrer's
primary company by id). What a search cannot be trusted to show (a referrer or a company
created seconds ago, not indexed yet; more matches than one page) is read directly, only
when missing. Owners come from the cached owner list (one call per process and quarter hour).

The port's single reads remain for other callers (the SLA re-route): ``find_duplicates`` is
two searches (contacts by e-mail/domain, companies by domain/name); ``load_referrer`` is two
reads (contact by e-mail, its primary company); ``find_account_by_domain`` reuses the company
search just run for the same domain, else costs one search.

``ReferrerContext.account_contact_emails`` stays empty here: listing an account's contacts
costs a search per submission. Duplicate candidates carry the matched contact's primary
company (``account_id``), which is how a referee inside the referrer's own account shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from referral_sync.crm import (
    DuplicateCandidate,
    DuplicateKind,
    IntakeLookup,
    IntakeSnapshot,
    Owner,
    ReferrerContext,
    parse_decimal,
)
from referral_sync.errors import CrmPermanentError
from referral_sync.hubspot.client import HubSpotClient
from referral_sync.hubspot.owners import OwnerDirectory
from referral_sync.hubspot.records import props_of, to_datetime
from referral_sync.hubspot.search import Filter, Searcher, eq, op
from referral_sync.hubspot.translate import is_not_found
from referral_sync.program.schema import CrmMapping
from referral_sync.rules.duplicates import normalise_company, registrable_domain

_CONTACT_DUP = ["email", "hs_email_domain", "lifecyclestage", "associatedcompanyid",
                "hubspot_owner_id", "createdate", "referral_id", "company"]
_TRUE = {"true", "yes", "1", "y", "active"}
#: Matches read per intake search (HubSpot allows 200 a page).
_INTAKE_LIMIT = 100


def _truthy(value: object) -> bool:
    text = str(value or "").strip().lower()
    number = parse_decimal(text)
    return number > 0 if number is not None else text in _TRUE


def _domains(domain: str) -> list[str]:
    host = domain.strip().lower()
    return sorted({host, registrable_domain(host)})


def _referee_groups(email: str, domain: str | None) -> list[list[Filter]]:
    """Contacts with the referee's e-mail, or on the referee's work domain."""
    groups = [[eq("email", email)]]
    if domain:
        groups.append([{"propertyName": "hs_email_domain", "operator": "IN",
                        "values": _domains(domain)}])
    return groups


def _company_groups(domain: str | None, company_key: str) -> list[list[Filter]]:
    """Companies on the referee's domain, or whose name has the company key's longest word."""
    groups: list[list[Filter]] = []
    if domain:
        groups.append([{"propertyName": "domain", "operator": "IN", "values": _domains(domain)}])
    token = max(company_key.split(), key=len, default="")
    if token:
        groups.append([op("name", "CONTAINS_TOKEN", token)])
    return groups


def _is_referee(record: dict[str, Any], email: str, domain: str | None) -> bool:
    props = props_of(record)
    if str(props.get("email") or "").casefold() == email.casefold():
        return True
    return bool(domain) and str(props.get("hs_email_domain") or "").lower() in _domains(
        str(domain))


class Lookups:
    """Intake reads for one portal."""

    def __init__(self, client: HubSpotClient, searcher: Searcher, owners: OwnerDirectory,
                 mapping: CrmMapping, *, cache_ttl: float = 120.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._search = searcher
        self._owners = owners
        self._mapping = mapping
        self._ttl = cache_ttl
        self._monotonic = monotonic
        self._by_domain: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    @property
    def company_properties(self) -> list[str]:
        """What we read of a company: standing, tenure, owner and the mapped extras."""
        mapped = [self._mapping.customer_since_field, self._mapping.account_status_field,
                  self._mapping.usage_field, *self._mapping.extra_fields]
        return sorted({"name", "domain", "lifecyclestage", "hs_lifecyclestage_customer_date",
                       "createdate", "hubspot_owner_id", "hs_num_open_deals",
                       "referral_account_status", *(m for m in mapped if m)})

    # -- duplicates ------------------------------------------------------------------------
    def find_duplicates(self, email: str, domain: str | None, company_key: str,
                        since: datetime) -> list[DuplicateCandidate]:
        """Customers, open pipeline, earlier referrals and known contacts matching the
        referee. ``since`` is applied by the rules (they see ``created_at``)."""
        found = [c for r in self._search.first("contacts", _referee_groups(email, domain),
                                                _CONTACT_DUP, limit=50)
                 if (c := self._contact_candidate(r, email)) is not None]
        return found + self._company_candidates(domain, company_key)

    def _contact_candidate(self, record: dict[str, Any], email: str) -> DuplicateCandidate | None:
        props = props_of(record)
        by_email = str(props.get("email") or "").casefold() == email.casefold()
        stage = props.get("lifecyclestage")
        if stage == "customer":
            kind = DuplicateKind.CUSTOMER
        elif stage == "opportunity":
            kind = DuplicateKind.OPEN_PIPELINE
        elif props.get("referral_id"):
            kind = DuplicateKind.EARLIER_REFERRAL
        elif by_email:
            kind = DuplicateKind.CONTACT
        else:
            return None
        return DuplicateCandidate(
            kind=kind, matched_on="email" if by_email else "domain", record_type="contact",
            record_id=str(record["id"]), account_id=props.get("associatedcompanyid") or None,
            owner_id=props.get("hubspot_owner_id") or None,
            created_at=to_datetime(props.get("createdate")), company=props.get("company"),
            domain=props.get("hs_email_domain"), email=props.get("email"),
        )

    def _company_candidates(self, domain: str | None,
                            company_key: str) -> list[DuplicateCandidate]:
        groups = _company_groups(domain, company_key)
        if not groups:
            return []
        records = self._search.first("companies", groups, self.company_properties, limit=50)
        return self._companies_matching(records, domain, company_key)

    def _companies_matching(self, records: list[dict[str, Any]], domain: str | None,
                            company_key: str) -> list[DuplicateCandidate]:
        """The customers and open-pipeline companies among ``records`` that match the
        referee's domain or company name."""
        if domain:
            matching = [r for r in records
                        if str(props_of(r).get("domain") or "").lower() in _domains(domain)]
            self._by_domain[domain.lower()] = (self._monotonic(), matching)
        found = []
        for record in records:
            props = props_of(record)
            if domain and str(props.get("domain") or "").lower() in _domains(domain):
                matched = "domain"
            elif normalise_company(str(props.get("name") or "")) == company_key:
                matched = "company"
            else:
                continue
            open_deals = parse_decimal(props.get("hs_num_open_deals")) or 0
            if props.get("lifecyclestage") == "customer":
                kind = DuplicateKind.CUSTOMER
            elif open_deals > 0 or props.get("lifecyclestage") == "opportunity":
                kind = DuplicateKind.OPEN_PIPELINE
            else:
                continue
            found.append(DuplicateCandidate(
                kind=kind, matched_on=matched, record_type="company",
                record_id=str(record["id"]), account_id=str(record["id"]),
                owner_id=props.get("hubspot_owner_id") or None,
                created_at=to_datetime(props.get("createdate")),
                company=props.get("name"), domain=props.get("domain"),
            ))
        return found

    # -- a whole submission at once --------------------------------------------------------
    def load_intake(self, lookup: IntakeLookup) -> IntakeSnapshot:
        """Referrer, duplicates, account match and owners for one submission (two searches
        in the usual case)."""
        referrer, duplicates = self._intake_contacts(lookup)
        company_id = str(props_of(referrer).get("associatedcompanyid") or "") if referrer else ""
        groups = _company_groups(lookup.domain, lookup.company_key)
        if company_id:
            groups.append([eq("hs_object_id", company_id)])
        records = self._search.first("companies", groups, self.company_properties,
                                     limit=_INTAKE_LIMIT) if groups else []
        duplicates += self._companies_matching(records, lookup.domain, lookup.company_key)
        context = None
        if referrer is not None:
            company = next((r for r in records if str(r.get("id")) == company_id), None)
            if company is None and company_id:
                company = self._company(company_id)  # not indexed yet, or past the page
            context = self._referrer_context(referrer, lookup.referrer_email, company)
        match = None
        if lookup.match_account and lookup.domain:
            match = self._best_account([r for r in records if str(
                props_of(r).get("domain") or "").lower() in _domains(lookup.domain)])
        refs = set(lookup.owner_refs) | {c.owner_id for c in (context, match)
                                         if c is not None and c.owner_id}
        return IntakeSnapshot(referrer=context, duplicates=duplicates, account_match=match,
                              owners=self._owners_for(refs))

    def _intake_contacts(self, lookup: IntakeLookup) -> tuple[dict[str, Any] | None,
                                                             list[DuplicateCandidate]]:
        """The referrer's contact and the referee's duplicate contacts, from one search."""
        groups = [*_referee_groups(lookup.referee_email, lookup.domain),
                  [eq("email", lookup.referrer_email)]]
        props = sorted({*_CONTACT_DUP, *self._referrer_properties})
        records = self._search.first("contacts", groups, props, limit=_INTAKE_LIMIT)
        wanted = lookup.referrer_email.casefold()
        referrer = next((r for r in records
                         if str(props_of(r).get("email") or "").casefold() == wanted), None)
        if referrer is None:
            # Search may lag a new contact by moments: the direct read is authoritative.
            referrer = self._referrer_contact(lookup.referrer_email)
        found = [c for r in records if _is_referee(r, lookup.referee_email, lookup.domain)
                 and (c := self._contact_candidate(r, lookup.referee_email)) is not None]
        return referrer, found

    def _owners_for(self, refs: set[str]) -> dict[str, Owner | None]:
        return {ref: self._owners.get(ref) for ref in sorted(refs)}

    # -- referrer and account context -------------------------------------------------------
    @property
    def _referrer_properties(self) -> list[str]:
        return ["email", "firstname", "lastname", "associatedcompanyid", "hubspot_owner_id",
                *self._mapping.extra_fields]

    def load_referrer(self, email: str) -> ReferrerContext | None:
        """The referrer's contact and its primary company, or None for an unknown e-mail."""
        contact = self._referrer_contact(email)
        if contact is None:
            return None
        company_id = props_of(contact).get("associatedcompanyid")
        company = self._company(str(company_id)) if company_id else None
        return self._referrer_context(contact, email, company)

    def _referrer_contact(self, email: str) -> dict[str, Any] | None:
        try:
            return self._client.call("contacts.get_by_email", self._client.objects.get_by_id,
                                     "contacts", email, properties=self._referrer_properties,
                                     id_property="email").json()
        except CrmPermanentError as exc:
            if is_not_found(exc):
                return None
            raise

    def _company(self, company_id: str) -> dict[str, Any] | None:
        try:
            return self._client.call("companies.get_by_id", self._client.objects.get_by_id,
                                     "companies", company_id,
                                     properties=self.company_properties).json()
        except CrmPermanentError as exc:
            if is_not_found(exc):
                return None
            raise

    def _referrer_context(self, contact: dict[str, Any], email: str,
                          company: dict[str, Any] | None) -> ReferrerContext:
        cprops = props_of(contact)
        name = f"{cprops.get('firstname') or ''} {cprops.get('lastname') or ''}".strip()
        context = ReferrerContext(contact_id=str(contact["id"]),
                                  email=str(cprops.get("email") or email), name=name)
        context.fields.update({k: cprops.get(k) for k in self._mapping.extra_fields})
        return self._with_account(context, company) if company is not None else context

    def find_account_by_domain(self, domain: str) -> ReferrerContext | None:
        """The company owning ``domain`` (a customer first), if any."""
        cached = self._by_domain.get(domain.lower())
        if cached and self._monotonic() - cached[0] <= self._ttl:
            records = cached[1]
        else:
            groups = [[{"propertyName": "domain", "operator": "IN", "values": _domains(domain)}]]
            records = self._search.first("companies", groups, self.company_properties, limit=10)
        return self._best_account(records)

    def _best_account(self, records: list[dict[str, Any]]) -> ReferrerContext | None:
        """The account among a domain's companies: a customer first."""
        if not records:
            return None
        best = sorted(records, key=lambda r: props_of(r).get("lifecyclestage") != "customer")[0]
        return self._with_account(ReferrerContext(contact_id="", email=""), best)

    def _with_account(self, context: ReferrerContext, company: dict[str, Any]) -> ReferrerContext:
        props, mapping = props_of(company), self._mapping
        since_field = mapping.customer_since_field or "hs_lifecyclestage_customer_date"
        status = props.get(mapping.account_status_field or "referral_account_status")
        owner_id = props.get("hubspot_owner_id") or None
        owner = self._owners.get(owner_id) if owner_id else None
        usage: bool | None = None
        if mapping.usage_field:
            usage = _truthy(props.get(mapping.usage_field))
        return context.model_copy(update={
            "account_id": str(company["id"]), "account_name": props.get("name"),
            "account_domain": props.get("domain"),
            "is_paying_customer": props.get("lifecyclestage") == "customer",
            "account_type": props.get("lifecyclestage"),
            "customer_since": to_datetime(props.get(since_field))
            or to_datetime(props.get("createdate")),
            "account_status": status or None, "usage_active": usage, "owner_id": owner_id,
            "owner_active": owner.active if owner else owner_id is None,
            "fields": {**context.fields,
                       **{k: props[k] for k in mapping.extra_fields if k in props}},
        })
