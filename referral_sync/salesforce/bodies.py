"""Record bodies the adapter writes (pure functions of referral-sync's models)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from simple_salesforce.format import format_soql

from referral_sync.crm import CrmTask
from referral_sync.models import (
    Milestone,
    Referral,
    ReferralStatus,
    RewardEntry,
    RewardState,
    RoutingDecision,
)
from referral_sync.program.schema import CrmMapping
from referral_sync.salesforce import schema as s
from referral_sync.salesforce.status import StatusMapping

#: Statuses at which the "qualified" milestone holds (a later loss does not undo it).
QUALIFIED_OR_LATER = frozenset({ReferralStatus.QUALIFIED, ReferralStatus.OPPORTUNITY,
                                ReferralStatus.CLOSED_WON, ReferralStatus.CLOSED_LOST})



def iso(value: datetime | None) -> str | None:
    """A datetime as Salesforce accepts it (UTC, seconds)."""
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def referral_values(referral: Referral, statuses: StatusMapping,
                    decision: RoutingDecision | None = None) -> dict[str, Any]:
    """The referral fields shared by Lead and Opportunity."""
    first_action = (decision.first_action if decision else referral.first_action) or ""
    policy = (f"{decision.policy_version} ({decision.policy_hash})" if decision
              else f"{referral.policy_version} ({referral.policy_hash})"
              if referral.policy_version else None)
    reason = (decision.reason if decision else referral.routing_reason) or ""
    return _present({
        s.REFERRAL_STATUS: statuses.label(referral.status),
        s.PROGRAM: referral.program,
        s.ROUTING_REASON: reason[:255] or None,
        s.POLICY_VERSION: policy[:80] if policy else None,
        s.FIRST_ACTION: first_action.capitalize() or None,
        s.QUALIFIED_AT: iso(referral.reached_at(ReferralStatus.QUALIFIED)),
        s.DISQUALIFIED_REASON: (referral.disqualified_reason or "")[:255] or None,
    })


#: Field names the service uses (shared with the other adapters) → Salesforce fields.
FIELD_ALIASES = {
    "referral_status": s.REFERRAL_STATUS,
    "reward_status": s.REWARD_STATUS,
    "routing_reason": s.ROUTING_REASON,
    "disqualified_reason": s.DISQUALIFIED_REASON,
    "first_action": s.FIRST_ACTION,
    "program": s.PROGRAM,
}
_TEXT_LIMITS = {s.REWARD_STATUS: 255, s.ROUTING_REASON: 255, s.DISQUALIFIED_REASON: 255,
                s.PROGRAM: 80}


def aliased(fields: dict[str, object] | None, statuses: StatusMapping) -> dict[str, Any]:
    """``update_referral(fields=...)`` in Salesforce terms; Salesforce names pass through."""
    out: dict[str, Any] = {}
    for key, value in (fields or {}).items():
        name = FIELD_ALIASES.get(key, key)
        if key == "referral_status" and value is not None:
            value = statuses.label(ReferralStatus(str(value)))
        elif key == "first_action" and isinstance(value, str):
            value = value.capitalize()
        elif name in _TEXT_LIMITS and isinstance(value, str):
            value = value[:_TEXT_LIMITS[name]]
        out[name] = value
    return out


def lead_body(referral: Referral, decision: RoutingDecision, mapping: CrmMapping,
              statuses: StatusMapping) -> dict[str, Any]:
    """The referral Lead: the referee, attribution and the routing outcome."""
    referee = referral.referee
    return _present({
        "FirstName": referee.first_name, "LastName": referee.last_name,
        "Email": str(referee.email), "Company": referee.company, "Phone": referee.phone,
        "Title": referee.title, "Country": referee.country, "Industry": referee.industry,
        "NumberOfEmployees": referee.employees, "Description": referee.note,
        "LeadSource": mapping.lead_source_value,
        s.REFERRAL_FLAG: True,
        s.REFERRER_CONTACT: referral.referrer.contact_id,
        s.REFERRER_ACCOUNT: referral.referrer.account_id,
        s.REFERRED_AT: iso(referral.submitted_at),
        **referral_values(referral, statuses, decision),
    })


def reward_body(entry: RewardEntry, guard_ref: str | None = None) -> dict[str, Any]:
    """The ``Referral_Reward__c`` fields; with ``guard_ref`` the Lead (and Opportunity) come
    from that guard query in the same Composite call (see ``reward_guard``)."""
    body = _present({
        s.REFERRAL_ID: entry.referral_id,
        "Lead__r": {s.REFERRAL_ID: entry.referral_id},
        "Referrer_Email__c": entry.referrer_email,
        "Milestone__c": entry.milestone.value,
        "Amount__c": float(entry.amount),
        "Currency__c": entry.currency,
        "Status__c": entry.state.value.capitalize(),
        "Reward_Type__c": entry.reward_type.value,
        "Tier__c": entry.tier,
        s.PROGRAM: entry.program,
        "Requires_Approval__c": entry.requires_approval,
        "Earned_At__c": iso(entry.earned_at),
        "Hold_Until__c": iso(entry.hold_until),
        "Reasoning__c": "\n".join(entry.reasoning)[:32000] or None,
    })
    if guard_ref:
        del body["Lead__r"]
        body["Lead__c"] = f"@{{{guard_ref}.records[0].Id}}"
        if entry.milestone is Milestone.CLOSED_WON:
            body["Opportunity__c"] = f"@{{{guard_ref}.records[0].ConvertedOpportunityId}}"
    return body


def reward_guard(entry: RewardEntry, statuses: StatusMapping) -> str | None:
    """For a newly earned reward: a query that finds the referral's Lead only while
    Salesforce still shows the milestone (Lead qualified or converted; its converted
    Opportunity won) — the same records ``read_referral`` decides by."""
    if entry.state is not RewardState.EARNED:
        return None
    if entry.milestone is Milestone.CLOSED_WON:
        return format_soql(f"SELECT Id, ConvertedOpportunityId FROM Lead WHERE "
                           f"{s.REFERRAL_ID} = {{}} AND ConvertedOpportunity.IsWon = true "
                           "LIMIT 1", entry.referral_id)
    values = sorted(v for v, st in statuses.referral_values.items() if st in QUALIFIED_OR_LATER)
    return format_soql(f"SELECT Id FROM Lead WHERE {s.REFERRAL_ID} = {{}} AND "
                       f"(IsConverted = true OR {s.REFERRAL_STATUS} IN {{}}) LIMIT 1",
                       entry.referral_id, values)


def task_body(task: CrmTask, owner_id: str, record: str, who: bool | None = None
              ) -> dict[str, Any]:
    """A Task for ``owner_id`` on ``record`` (an id or a Composite reference); ``who``
    (Lead or Contact) is told by the id prefix unless given."""
    if who is None:
        who = record[:3] in ("00Q", "003")
    return _present({
        "Subject": task.subject[:255],
        "OwnerId": owner_id,
        "Description": task.description or None,
        "ActivityDate": task.due.date().isoformat() if task.due else None,
        # Leads and Contacts are "who"; everything else is "what".
        ("WhoId" if who else "WhatId"): record,
    })
