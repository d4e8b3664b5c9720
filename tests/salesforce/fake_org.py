"""A Salesforce org double behind ``responses``: REST (query with paging, sObject upsert /
get / create, sObject Collections, Composite with references and allOrNone rollback) and the
Metadata API, answering in Salesforce's documented formats and error bodies.

Records live in dicts. Writes are checked against the fields the org knows: the standard
ones below plus the custom fields installed through the Metadata API — so a write to a field
referral-sync did not install fails here as it would in an org.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import responses

from referral_sync.salesforce import automation
from referral_sync.salesforce.schema import REFERRAL_ID, REFERRAL_STATUS
from tests.salesforce.fake_metadata import MD, FakeMetadataApi

INSTANCE = "acme.my.salesforce.com"
VERSION = "62.0"
ORG_ID = "00D5g00000AbCdEEAV"
PREFIX = {"Lead": "00Q", "Contact": "003", "Account": "001", "Opportunity": "006",
          "User": "005", "Group": "00G", "Task": "00T", "Referral_Reward__c": "a0R",
          "AccountTeamMember": "01M"}
COMMON = {"Id", "CreatedDate", "SystemModstamp", "LastModifiedDate"}
STANDARD = {
    "Lead": {"FirstName", "LastName", "Name", "Email", "Company", "Phone", "Title", "Country",
             "Industry", "NumberOfEmployees", "Description", "LeadSource", "OwnerId", "Status",
             "IsConverted", "ConvertedAccountId", "ConvertedContactId",
             "ConvertedOpportunityId", "ConvertedDate", "LastActivityDate"},
    "Contact": {"FirstName", "LastName", "Name", "Email", "AccountId", "OwnerId", "LeadSource"},
    "Account": {"Name", "Type", "Website", "OwnerId"},
    "Opportunity": {"Name", "AccountId", "OwnerId", "StageName", "IsWon", "IsClosed", "Amount",
                    "CloseDate", "LeadSource"},
    "User": {"Name", "Email", "IsActive"},
    "Group": {"Name", "DeveloperName", "Type", "Email"},
    "Task": {"Subject", "OwnerId", "WhoId", "WhatId", "Description", "ActivityDate", "Status"},
    "AccountTeamMember": {"AccountId", "UserId", "TeamMemberRole"},
    "Referral_Reward__c": {"Name"},
}
NOT_FOUND = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]


def error(code: str, message: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
    """A Salesforce REST error body."""
    return [{"message": message, "errorCode": code, "fields": fields or []}]


@dataclass
class Fault:
    """An injected failure for requests matching ``method`` and ``pattern``."""

    method: str
    pattern: str
    status: int
    body: Any
    times: int


class FakeOrg:
    """State and HTTP handlers of one org."""

    def __init__(self, rsps: responses.RequestsMock, *, account_teams: bool = True) -> None:
        self.db: dict[str, dict[str, dict[str, Any]]] = {obj: {} for obj in PREFIX}
        self.metadata = FakeMetadataApi()
        self.now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
        self.page_size = 2000
        self.faults: list[Fault] = []
        self.account_teams = account_teams
        self.assignment_rule_owner: str | None = None
        self.auto_assign: list[str] = []
        #: Whether referral-sync's conversion Flow is deployed (``automation.conversion_flow``).
        self.conversion_flow = True
        self._counter = 0
        self.cursors: dict[str, list[dict[str, Any]]] = {}
        base = re.compile(rf"https://{re.escape(INSTANCE)}/services/data/v{VERSION}/.*")
        for method in ("GET", "POST", "PATCH", "DELETE"):
            rsps.add_callback(method, base, callback=self._rest)
        rsps.add_callback("POST", re.compile(rf"https://{re.escape(INSTANCE)}/services/Soap/m/.*"),
                          callback=self._soap)

    # -- helpers for tests ---------------------------------------------------------------

    def stamp(self) -> str:
        """Advance the org clock by a second; Salesforce's datetime text for it."""
        self.now += timedelta(seconds=1)
        return self.now.strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    def new_id(self, sobject: str) -> str:
        """An 18-character id with the object's key prefix."""
        self._counter += 1
        return f"{PREFIX[sobject]}5g{self._counter:010d}AAV"

    def add(self, sobject: str, **fields: Any) -> str:
        """Insert a record directly (org data that exists before the test)."""
        record_id = fields.pop("Id", None) or self.new_id(sobject)
        stamp = self.stamp()
        self.db[sobject][record_id] = {"Id": record_id, "CreatedDate": stamp,
                                       "SystemModstamp": stamp, **self.defaults(sobject),
                                       **fields}
        return record_id

    def update(self, sobject: str, record_id: str, **fields: Any) -> None:
        """An edit made by a user in Salesforce."""
        stamp = self.stamp()
        self.db[sobject][record_id].update(fields, SystemModstamp=stamp, LastModifiedDate=stamp)

    def find(self, sobject: str, **match: Any) -> list[dict[str, Any]]:
        """Records whose fields equal ``match``."""
        return [r for r in self.db[sobject].values()
                if all(r.get(k) == v for k, v in match.items())]

    def fail(self, method: str, pattern: str, status: int, body: Any, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with ``status`` and ``body``."""
        self.faults.append(Fault(method, pattern, status, body, times))

    def convert_lead(self, lead_id: str, *, opportunity: bool = True) -> dict[str, str]:
        """Convert like Salesforce: Account, Contact (and Opportunity) created, fields mapped
        by the installed LeadConvertSettings, the Lead marked converted."""
        lead = self.db["Lead"][lead_id]
        owner = lead.get("OwnerId")
        ids = {
            "Account": self.add("Account", Name=lead["Company"], OwnerId=owner),
            "Contact": self.add("Contact", LastName=lead["LastName"], Email=lead.get("Email"),
                                OwnerId=owner, LeadSource=lead.get("LeadSource")),
        }
        self.db["Contact"][ids["Contact"]]["AccountId"] = ids["Account"]
        if opportunity:
            ids["Opportunity"] = self.add(
                "Opportunity", Name=lead["Company"], AccountId=ids["Account"], OwnerId=owner,
                StageName="Prospecting", LeadSource=lead.get("LeadSource"))
        for target, pairs in self._convert_mappings().items():
            if target in ids:
                for source, dest in pairs:
                    self.db[target][ids[target]][dest] = lead.get(source)
        if opportunity:
            self.before_insert("Opportunity", self.db["Opportunity"][ids["Opportunity"]])
        self.update("Lead", lead_id, IsConverted=True, Status="Closed - Converted",
                    ConvertedAccountId=ids["Account"], ConvertedContactId=ids["Contact"],
                    ConvertedOpportunityId=ids.get("Opportunity"))
        return ids

    def before_insert(self, sobject: str, record: dict[str, Any]) -> None:
        """Run the deployed before-save Flows on a record being created (its field values,
        mapped ones included, already set; the Flow's assignment wins over them)."""
        if (self.conversion_flow and sobject == "Opportunity"
                and record.get(REFERRAL_ID) not in (None, "")):
            record[REFERRAL_STATUS] = automation.CONVERTED_STATUS

    def _convert_mappings(self) -> dict[str, list[tuple[str, str]]]:
        element = self.metadata.element("LeadConvertSettings", "LeadConvertSettings")
        out: dict[str, list[tuple[str, str]]] = {}
        for mapping in [] if element is None else element.findall(f"{{{MD}}}objectMapping"):
            out[mapping.findtext(f"{{{MD}}}outputObject") or ""] = [
                (m.findtext(f"{{{MD}}}inputField") or "", m.findtext(f"{{{MD}}}outputField") or "")
                for m in mapping.findall(f"{{{MD}}}mappingFields")]
        return out

    def outbound_message(self, sobject: str, record_ids: list[str], *,
                         notification_ids: list[str] | None = None,
                         org_id: str = ORG_ID) -> bytes:
        """The SOAP body Salesforce POSTs for these records as they are now."""
        notes = []
        for n, record_id in enumerate(record_ids):
            note_id = (notification_ids[n] if notification_ids
                       else f"04l5g{self.next_number():010d}AAV")
            record = self.db[sobject][record_id]
            fields = "".join(
                f"<sf:{name}>{_om_text(record.get(name))}</sf:{name}>"
                for name in automation.OUTBOUND_FIELDS[sobject] if record.get(name) is not None)
            notes.append(f'<Notification><Id>{note_id}</Id><sObject xsi:type="sf:{sobject}" '
                         f'xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{fields}</sObject>'
                         "</Notification>")
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<soapenv:Envelope xmlns:soapenv='
            '"http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/'
            'XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
            '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
            f"<OrganizationId>{org_id}</OrganizationId><ActionId>04k5g000000KxYzAAK</ActionId>"
            '<SessionId xsi:nil="true"/><EnterpriseUrl>https://acme.my.salesforce.com/services/'
            "Soap/c/62.0/00D5g00000AbCdE</EnterpriseUrl><PartnerUrl>https://acme.my."
            "salesforce.com/services/Soap/u/62.0/00D5g00000AbCdE</PartnerUrl>"
            f"{''.join(notes)}</notifications></soapenv:Body></soapenv:Envelope>"
        ).encode()

    def next_number(self) -> int:
        self._counter += 1
        return self._counter

    # -- schema knowledge ----------------------------------------------------------------

    def custom_field(self, sobject: str, name: str) -> Any:
        """The installed CustomField element, if any (Activity fields serve Task)."""
        owner = "Activity" if sobject in ("Task", "Event") else sobject
        return self.metadata.element("CustomField", f"{owner}.{name}")

    def knows(self, sobject: str, name: str) -> bool:
        """Whether ``sobject`` has a field ``name`` in this org."""
        if name in COMMON or name in STANDARD[sobject]:
            return True
        if sobject == "Referral_Reward__c" and not self.metadata.element(
                "CustomObject", "Referral_Reward__c"):
            return False
        return self.custom_field(sobject, name) is not None

    def check_value(self, sobject: str, name: str, value: Any) -> list[dict[str, Any]] | None:
        element = self.custom_field(sobject, name)
        if element is None or value is None:
            return None
        kind = element.findtext(f"{{{MD}}}type")
        restricted = element.findtext(f"{{{MD}}}valueSet/{{{MD}}}restricted") == "true"
        if kind == "Picklist" and restricted:
            allowed = [v.findtext(f"{{{MD}}}fullName") for v in element.iter(f"{{{MD}}}value")]
            if value not in allowed:
                return error("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                             f"{name}: bad value for restricted picklist field: {value}", [name])
        return None

    @staticmethod
    def defaults(sobject: str) -> dict[str, Any]:
        return {"Lead": {"IsConverted": False, "Status": "Open - Not Contacted"},
                "Opportunity": {"IsWon": False, "IsClosed": False},
                "User": {"IsActive": True}}.get(sobject, {})

    # -- HTTP ----------------------------------------------------------------------------

    def _rest(self, request: Any) -> tuple[int, dict[str, str], str]:
        for fault in self.faults:
            if (fault.times > 0 and fault.method == request.method
                    and re.search(fault.pattern, unquote(request.url))):
                fault.times -= 1
                if isinstance(fault.body, Exception):
                    raise fault.body
                if isinstance(fault.body, str):
                    return fault.status, {"Content-Type": "text/html"}, fault.body
                return fault.status, {}, json.dumps(fault.body)
        path = request.url.split(f"/services/data/v{VERSION}/", 1)[1]
        body = json.loads(request.body) if request.body else None
        if path == "composite" and request.method == "POST":
            status, answer = self._composite(body)
        else:
            status, answer = self._dispatch(request.method, path, body, dict(request.headers))
        headers = {"Sforce-Limit-Info": "api-usage=25/15000"}
        return status, headers, "" if answer is None else json.dumps(answer)

    def _soap(self, request: Any) -> tuple[int, dict[str, str], str]:
        return self.metadata.handle(request.body)

    def _dispatch(self, method: str, path: str, body: Any,
                  headers: Mapping[str, str]) -> tuple[int, Any]:
        from tests.salesforce.fake_rest import dispatch

        return dispatch(self, method, path, body, headers)

    def _composite(self, payload: Mapping[str, Any]) -> tuple[int, Any]:
        from tests.salesforce.fake_rest import composite

        return composite(self, payload)

    def record_by_id(self, record_id: Any) -> tuple[str, dict[str, Any]] | None:
        """Find a record of any type by id."""
        for sobject, prefix in PREFIX.items():
            if isinstance(record_id, str) and record_id.startswith(prefix):
                found = self.db[sobject].get(record_id)
                return (sobject, found) if found else None
        return None

    def value(self, sobject: str, record: Mapping[str, Any] | None, path: str) -> Any:
        """A field value, following relationship paths like ``Account.Owner.IsActive``."""
        head, _, rest = path.partition(".")
        if record is None:
            return None
        if not rest:
            return record.get(head)
        id_field = head[:-3] + "__c" if head.endswith("__r") else head + "Id"
        parent = self.record_by_id(record.get(id_field))
        return self.value(parent[0], parent[1], rest) if parent else None

    def shape(self, sobject: str, record: Mapping[str, Any], fields: list[str]) -> dict[str, Any]:
        """A record as the REST API returns it, relationships nested."""
        out: dict[str, Any] = {"attributes": {"type": sobject, "url": f"/services/data/"
                                              f"v{VERSION}/sobjects/{sobject}/{record['Id']}"}}
        for path in fields:
            self._put(out, sobject, record, path.split("."))
        return out

    def _put(self, out: dict[str, Any], sobject: str, record: Mapping[str, Any],
             parts: list[str]) -> None:
        if len(parts) == 1:
            out[parts[0]] = record.get(parts[0])
            return
        head = parts[0]
        id_field = head[:-3] + "__c" if head.endswith("__r") else head + "Id"
        parent = self.record_by_id(record.get(id_field))
        if parent is None:
            out[head] = None
            return
        nested = out.get(head) or {"attributes": {"type": parent[0]}}
        self._put(nested, parent[0], parent[1], parts[1:])
        out[head] = nested


def sort_key(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, str(value) if not isinstance(value, float)
                                          else f"{value:020.4f}")


def _om_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).replace("+0000", "Z").replace("&", "&amp;").replace("<", "&lt;")
    return text


def query_text(path: str) -> str:
    """The SOQL of a ``query/?q=`` path."""
    return parse_qs(urlsplit(path).query)["q"][0]
