"""Turn Salesforce records (REST JSON or Outbound Message text) into the port's snapshots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from referral_sync.crm import (
    DuplicateCandidate,
    DuplicateKind,
    Owner,
    ReferralSnapshot,
    ReferrerContext,
    parse_decimal,
)
from referral_sync.models import ChangeEvent, CrmObject, OwnerKind, ReferralStatus
from referral_sync.program.schema import CrmMapping
from referral_sync.salesforce import schema as s
from referral_sync.salesforce.status import StatusMapping, truthy

Record = Mapping[str, Any]
OBJECT_TYPES = {
    "Lead": CrmObject.LEAD,
    "Opportunity": CrmObject.OPPORTUNITY,
    "Contact": CrmObject.CONTACT,
    "Account": CrmObject.ACCOUNT,
}


def value_at(record: Record | None, path: str) -> Any:
    """``record["Account"]["Owner"]["IsActive"]`` for ``"Account.Owner.IsActive"``."""
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def parse_datetime(value: Any) -> datetime | None:
    """Salesforce date/datetime text (``…+0000``, ``…Z`` or a date) as a datetime."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def website_domain(website: Any) -> str | None:
    """``acme.com`` from ``https://www.acme.com/``, ``www.acme.com`` or ``acme.com``."""
    if not website:
        return None
    text = str(website).strip().lower()
    host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    return host.removeprefix("www.") or None


def _owns_domain(website: Any, domain: str | None) -> bool:
    host = website_domain(website)
    return bool(domain and host and (host == domain or host.endswith("." + domain)))


def _usage(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value > 0
    return truthy(value)


def account_context(
    account: Record | None, mapping: CrmMapping, prefix: str = ""
) -> dict[str, Any]:
    """ReferrerContext fields taken from an Account (nested under ``prefix`` in a Contact)."""
    def get(name: str) -> Any:
        return value_at(account, prefix + name)

    account_type = get("Type")
    since_field = mapping.customer_since_field or "CreatedDate"
    return {
        "account_id": get("Id"),
        "account_name": get("Name"),
        "account_domain": website_domain(get("Website")),
        "account_type": account_type,
        "is_paying_customer": bool(account_type)
        and str(account_type).startswith(mapping.customer_type_prefix),
        "customer_since": parse_datetime(get(since_field)),
        "account_status": get(mapping.account_status_field or s.ACCOUNT_STATUS) or None,
        "usage_active": _usage(get(mapping.usage_field)) if mapping.usage_field else None,
        "owner_id": get("OwnerId"),
        "owner_active": get("Owner.IsActive") is not False,
        "fields": {name: get(name) for name in mapping.extra_fields},
    }


def referrer_context(
    contact: Record, colleagues: Sequence[Record], team: Sequence[Record], mapping: CrmMapping
) -> ReferrerContext:
    """The referrer's contact, account facts, account team (role → user) and colleagues."""
    facts = account_context(contact, mapping, "Account.") if contact.get("Account") else {}
    return ReferrerContext(
        contact_id=contact["Id"],
        email=str(contact.get("Email") or ""),
        name=str(contact.get("Name") or ""),
        **{**facts, "account_id": contact.get("AccountId")},
        account_team={str(m["TeamMemberRole"]): str(m["UserId"]) for m in team
                      if m.get("TeamMemberRole") and m.get("UserId")},
        account_contact_emails=[str(c["Email"]).lower() for c in colleagues if c.get("Email")],
    )


def _matched_on(email: Any, wanted: str, domain: str | None) -> str | None:
    text = str(email or "").lower()
    if text and text == wanted.lower():
        return "email"
    if domain and text.endswith("@" + domain.lower()):
        return "domain"
    return None


def _company_matches(name: Any, company_key: str) -> bool:
    return bool(company_key) and company_key.lower() in str(name or "").lower()


def _candidate(kind: DuplicateKind, matched_on: str, record_type: str, record: Record,
               **extra: Any) -> DuplicateCandidate:
    return DuplicateCandidate(
        kind=kind, matched_on=matched_on, record_type=record_type, record_id=record["Id"],
        owner_id=record.get("OwnerId"), created_at=parse_datetime(record.get("CreatedDate")),
        **extra,
    )


def duplicate_candidates(
    found: Mapping[str, Sequence[Record]], email: str, domain: str | None, company_key: str,
    mapping: CrmMapping,
) -> list[DuplicateCandidate]:
    """Classify the records the duplicate queries found (see ``queries.duplicate_queries``)."""
    out: list[DuplicateCandidate] = []
    prefix = mapping.customer_type_prefix
    for lead in found.get("leads", []):
        on = _matched_on(lead.get("Email"), email, domain) or (
            "company" if _company_matches(lead.get("Company"), company_key) else None)
        if on:
            kind = (DuplicateKind.EARLIER_REFERRAL if lead.get(s.REFERRAL_ID)
                    else DuplicateKind.OPEN_PIPELINE)
            out.append(_candidate(kind, on, "Lead", lead, company=lead.get("Company"),
                                  email=lead.get("Email")))
    for contact in found.get("contacts", []):
        on = _matched_on(contact.get("Email"), email, domain)
        if on:
            customer = str(value_at(contact, "Account.Type") or "").startswith(prefix)
            out.append(_candidate(
                DuplicateKind.CUSTOMER if customer else DuplicateKind.CONTACT, on, "Contact",
                contact, account_id=contact.get("AccountId"), email=contact.get("Email"),
                company=value_at(contact, "Account.Name"),
                domain=website_domain(value_at(contact, "Account.Website")),
            ))
    for account in found.get("accounts", []):
        on = _account_match(account, domain, company_key)
        if not on:
            continue
        at_account = {"account_id": account["Id"], "company": account.get("Name"),
                      "domain": website_domain(account.get("Website"))}
        if str(account.get("Type") or "").startswith(prefix):
            out.append(_candidate(DuplicateKind.CUSTOMER, on, "Account", account, **at_account))
        for opportunity in children(account, "Opportunities"):
            out.append(_candidate(DuplicateKind.OPEN_PIPELINE, on, "Opportunity", opportunity,
                                  **at_account))
    return out


def children(record: Record, relationship: str) -> list[Record]:
    """The child records of a subquery (Salesforce answers null when there are none)."""
    nested = record.get(relationship)
    return list(nested.get("records") or []) if isinstance(nested, Mapping) else []


def owner(record: Record | None, id_path: str = "Id", prefix: str = "") -> Owner | None:
    """The user or queue a record is (``Id``, ``Name`` …) or points at (``OwnerId`` with
    ``Owner.Name`` …), when the query read its fields."""
    owner_id, name = value_at(record, id_path), value_at(record, prefix + "Name")
    if not owner_id or name is None:
        return None
    queue = str(owner_id).startswith("00G")
    return Owner(id=str(owner_id), name=str(name),
                 kind=OwnerKind.QUEUE if queue else OwnerKind.USER,
                 email=value_at(record, prefix + "Email"),
                 active=value_at(record, prefix + "IsActive") is not False)


def _account_match(account: Record, domain: str | None, company_key: str) -> str | None:
    if _owns_domain(account.get("Website"), domain):
        return "domain"
    return "company" if _company_matches(account.get("Name"), company_key) else None


def best_domain_account(accounts: Sequence[Record], domain: str, customer_prefix: str
                        ) -> Record | None:
    """The account whose website is exactly ``domain`` (or a subdomain), customers first."""
    owners = [a for a in accounts if _owns_domain(a.get("Website"), domain)]
    owners.sort(key=lambda a: (not str(a.get("Type") or "").startswith(customer_prefix),
                               str(a.get("CreatedDate") or "")))
    return owners[0] if owners else None


def snapshot(referral_id: str, lead: Record | None, opportunity: Record | None,
             statuses: StatusMapping) -> ReferralSnapshot:
    """The referral's current state; the Opportunity, once there is one, decides."""
    converted = value_at(lead, "ConvertedOpportunity") if lead else None
    opp: Record | None = None
    if lead and lead.get("ConvertedOpportunityId") and isinstance(converted, Mapping):
        opp = {**converted, "Id": lead["ConvertedOpportunityId"]}
    elif opportunity:
        opp = opportunity
    if opp is not None:
        status = statuses.opportunity_status(opp)
    else:
        status = (statuses.lead_status(lead) if lead else None) or ReferralStatus.SUBMITTED
    reason = (lead or {}).get(s.DISQUALIFIED_REASON) or (opportunity or {}).get(
        s.DISQUALIFIED_REASON)
    return ReferralSnapshot(
        referral_id=referral_id,
        record_id=str((lead or opp or {}).get("Id") or ""),
        status=status,
        owner_id=(opp or lead or {}).get("OwnerId"),
        opportunity_id=opp.get("Id") if opp else None,
        amount=parse_decimal(opp.get("Amount")) if opp else None,
        disqualified_reason=reason,
        touched=statuses.touched(lead) if lead else opp is not None,
    )


def change_event(
    event_id: str, sobject: str, fields: Record, statuses: StatusMapping, fallback: datetime
) -> ChangeEvent | None:
    """A ChangeEvent for one changed record, or None for an object we do not track."""
    object_type = OBJECT_TYPES.get(sobject)
    if object_type is None or not fields.get("Id"):
        return None
    if object_type is CrmObject.LEAD:
        status = statuses.lead_status(fields)
    elif object_type is CrmObject.OPPORTUNITY:
        status = statuses.opportunity_status(fields)
    else:
        status = None
    occurred = parse_datetime(fields.get("SystemModstamp") or fields.get("LastModifiedDate"))
    return ChangeEvent(
        provider="salesforce",
        event_id=event_id,
        object_type=object_type,
        record_id=str(fields["Id"]),
        occurred_at=occurred or fallback,
        referral_id=fields.get(s.REFERRAL_ID) or None,
        status=status,
        amount=parse_decimal(fields.get("Amount")),
        reason=fields.get(s.DISQUALIFIED_REASON) or None,
        fields={k: v for k, v in fields.items() if k != "attributes"},
        complete=True,  # Outbound Messages and queries send the whole record
    )
