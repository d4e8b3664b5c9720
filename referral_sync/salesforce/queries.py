"""SOQL the adapter sends. Every value goes through ``format_soql`` (quotes, backslashes,
LIKE wildcards escaped); field names from the program file are checked to be identifiers,
so configuration cannot inject SOQL either."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from simple_salesforce.format import format_soql

from referral_sync.errors import ConfigurationError
from referral_sync.program.schema import CrmMapping
from referral_sync.salesforce import schema as s

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
#: Salesforce record id: 15 or 18 characters, letters and digits.
RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")
#: Rows per duplicate query; more matches than this are not all examined.
DUPLICATE_LIMIT = 50
#: Open opportunities read per matching account (one is enough to call it pipeline).
OPEN_PIPELINE_LIMIT = 5
#: The record owner's facts, read along with the record so routing needs no owner look-up.
OWNER_FIELDS = ("Owner.Name", "Owner.Email", "Owner.IsActive")

LEAD_FIELDS = (
    "Id", "Status", "OwnerId", s.REFERRAL_ID, s.REFERRAL_STATUS, s.DISQUALIFIED_REASON,
    "IsConverted", "ConvertedOpportunityId", "ConvertedAccountId", "ConvertedContactId",
    "LastActivityDate", "SystemModstamp",
)
OPPORTUNITY_FIELDS = (
    "Id", "IsWon", "IsClosed", "Amount", "StageName", "OwnerId", s.REFERRAL_ID,
    s.DISQUALIFIED_REASON, "SystemModstamp",
)


def field_name(name: str) -> str:
    """``name`` if it is a safe (possibly dotted) field name.

    Raises:
        ConfigurationError: for anything else.
    """
    if not _IDENTIFIER.match(name):
        raise ConfigurationError(f"crm mapping: {name!r} is not a Salesforce field name")
    return name


def record_id(value: str) -> str:
    """``value`` if it looks like a Salesforce record id (15 or 18 characters).

    Raises:
        ValueError: otherwise, so a malformed id never reaches a query.
    """
    if not RECORD_ID.match(value):
        raise ValueError("not a Salesforce record id")
    return value


def _select(fields: Iterable[str]) -> str:
    return ", ".join(dict.fromkeys(fields))


def _any(clauses: list[str]) -> str:
    return "(" + " OR ".join(clauses) + ")"


def duplicate_queries(
    email: str, domain: str | None, company_key: str, since: datetime
) -> dict[str, str]:
    """Queries for records matching a referee, by object; one Composite holds them all."""
    email_match = [format_soql("Email = {}", email)]
    if domain:
        email_match.append(format_soql("Email LIKE '%@{:like}'", domain))
    company = [format_soql("Company LIKE '%{:like}%'", company_key)] if company_key else []
    account_match = [format_soql("Name LIKE '%{:like}%'", company_key)] if company_key else []
    if domain:
        account_match.append(format_soql("Website LIKE '%{:like}%'", domain))
    queries = {
        "leads": (
            f"SELECT Id, Email, Company, OwnerId, CreatedDate, {s.REFERRAL_ID} FROM Lead "
            f"WHERE IsConverted = false AND "
            + format_soql("CreatedDate >= {}", since)
            + f" AND {_any(email_match + company)} ORDER BY CreatedDate DESC"
            f" LIMIT {DUPLICATE_LIMIT}"
        ),
        "contacts": (
            "SELECT Id, Email, AccountId, OwnerId, CreatedDate, Account.Name, Account.Type, "
            f"Account.Website FROM Contact WHERE {_any(email_match)} LIMIT {DUPLICATE_LIMIT}"
        ),
    }
    if account_match:
        # Open pipeline comes with its account (a child subquery), so the duplicate check
        # costs three of the five queries a Composite call may hold.
        queries["accounts"] = (
            "SELECT Id, Name, Website, Type, OwnerId, CreatedDate, "
            f"{_select(OWNER_FIELDS)}, (SELECT Id, OwnerId, CreatedDate FROM Opportunities "
            f"WHERE IsClosed = false ORDER BY CreatedDate DESC LIMIT {OPEN_PIPELINE_LIMIT}) "
            f"FROM Account WHERE {_any(account_match)} LIMIT {DUPLICATE_LIMIT}"
        )
    return queries


def account_fields(mapping: CrmMapping, prefix: str = "") -> list[str]:
    """Account fields read for eligibility, with the program's mapped fields."""
    names = ["Id", "Name", "Type", "Website", "CreatedDate", "OwnerId", *OWNER_FIELDS,
             field_name(mapping.account_status_field or s.ACCOUNT_STATUS)]
    if mapping.customer_since_field:
        names.append(field_name(mapping.customer_since_field))
    if mapping.usage_field:
        names.append(field_name(mapping.usage_field))
    names += [field_name(name) for name in mapping.extra_fields]
    return [prefix + name for name in dict.fromkeys(names)]


def referrer_queries(email: str, mapping: CrmMapping, *, account_team: bool,
                     colleagues: bool = True) -> dict[str, str]:
    """The referrer's contact and account, the account's team and (``colleagues``) its
    contacts' e-mails.

    The last two reference the first query's ``AccountId`` inside the same Composite.
    """
    account_id = "'@{referrer.records[0].AccountId}'"
    contact_account = account_fields(mapping, "Account.")
    queries = {
        "referrer": (
            f"SELECT {_select(['Id', 'Name', 'Email', 'AccountId', *contact_account])} "
            + format_soql("FROM Contact WHERE Email = {} ORDER BY CreatedDate LIMIT 1", email)
        ),
    }
    if colleagues:
        queries["colleagues"] = (
            f"SELECT Email FROM Contact WHERE AccountId = {account_id} AND Email != null "
            "LIMIT 200"
        )
    if account_team:
        queries["team"] = (
            "SELECT UserId, TeamMemberRole, User.Name, User.Email, User.IsActive "
            f"FROM AccountTeamMember WHERE AccountId = {account_id} AND User.IsActive = true"
        )
    return queries


def accounts_by_domain(domain: str) -> str:
    """Accounts whose website mentions ``domain`` (checked exactly by the caller)."""
    return (
        f"SELECT {_select(['Id', 'Name', 'Website', 'Type', 'OwnerId', 'CreatedDate'])} "
        + format_soql("FROM Account WHERE Website LIKE '%{:like}%' LIMIT 20", domain)
    )


def referral_queries(referral_id: str, lead_id: str | None) -> dict[str, str]:
    """The referral's Lead (with its converted Opportunity) and any Opportunity carrying
    its referral id (AEs sometimes create one without converting)."""
    where = (format_soql("Id = {}", record_id(lead_id)) if lead_id
             else format_soql(f"{s.REFERRAL_ID} = {{}}", referral_id))
    converted = ["ConvertedOpportunity." + f for f in ("IsWon", "IsClosed", "Amount", "OwnerId")]
    return {
        "lead": f"SELECT {_select(LEAD_FIELDS + tuple(converted))} FROM Lead WHERE {where}",
        "opportunity": (
            f"SELECT {_select(OPPORTUNITY_FIELDS)} FROM Opportunity "
            + format_soql(f"WHERE {s.REFERRAL_ID} = {{}} ORDER BY CreatedDate LIMIT 1",
                          referral_id)
        ),
    }


def changes_query(sobject: str, since: datetime) -> str:
    """Referral records of ``sobject`` changed at or after ``since``, oldest first."""
    fields = LEAD_FIELDS if sobject == "Lead" else OPPORTUNITY_FIELDS
    return (
        f"SELECT {_select(fields)} FROM {sobject} WHERE {s.REFERRAL_ID} != null AND "
        + format_soql("SystemModstamp >= {}", since)
        + " ORDER BY SystemModstamp, Id"
    )


def owner_names_queries(refs: Iterable[str]) -> dict[str, str]:
    """Queries resolving ``email:`` and ``queue:`` owner refs to users and queues."""
    emails = sorted({r.removeprefix("email:") for r in refs if r.startswith("email:")})
    queues = sorted({r.removeprefix("queue:") for r in refs if r.startswith("queue:")})
    out = {}
    if emails:
        out["users"] = format_soql(
            "SELECT Id, Name, Email, IsActive FROM User WHERE Email IN {}", emails)
    if queues:
        out["queues"] = format_soql(
            "SELECT Id, Name, DeveloperName, Email FROM Group WHERE Type = 'Queue' AND "
            "(Name IN {} OR DeveloperName IN {})", queues, queues)
    return out


def owner_query(ref: str) -> str:
    """The user or queue named by an id, ``email:<address>`` or ``queue:<name>``."""
    if ref.startswith("queue:"):
        name = ref.removeprefix("queue:")
        return format_soql(
            "SELECT Id, Name, Email FROM Group WHERE Type = 'Queue' AND "
            "(Name = {} OR DeveloperName = {}) LIMIT 1", name, name)
    if ref.startswith("email:"):
        return format_soql(
            "SELECT Id, Name, Email, IsActive FROM User WHERE Email = {} LIMIT 5",
            ref.removeprefix("email:"))
    if record_id(ref).startswith("00G"):
        return format_soql("SELECT Id, Name, Email FROM Group WHERE Id = {}", ref)
    return format_soql("SELECT Id, Name, Email, IsActive FROM User WHERE Id = {}", ref)
