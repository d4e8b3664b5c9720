"""Deploy-only metadata: list views, Outbound Messages, the Flows that send them, and the
Flow that marks Opportunities converted from referral Leads.

These live only in the source-format project (``deploy/salesforce``): the Outbound Message
endpoint carries the webhook token, and the integration user is org-specific, so both are
parameters of the generator (``python -m referral_sync.salesforce.sfdx``) and placeholders in
the committed files.
"""

from __future__ import annotations

from typing import Any

from referral_sync.models import ReferralStatus
from referral_sync.salesforce import schema as s
from referral_sync.salesforce.status import StatusMapping

PLACEHOLDER_ENDPOINT = "https://referral-sync.example.com/webhooks/salesforce/CHANGE_ME_TOKEN"
PLACEHOLDER_USER = "integration.user@example.com"

#: Fields each Outbound Message carries; the receiver maps them to ChangeEvents.
OUTBOUND_FIELDS: dict[str, tuple[str, ...]] = {
    "Lead": (
        "Id", s.REFERRAL_ID, s.REFERRAL_STATUS, s.DISQUALIFIED_REASON, "Status", "IsConverted",
        "ConvertedAccountId", "ConvertedContactId", "ConvertedOpportunityId", "OwnerId",
        "LastModifiedDate", "SystemModstamp",
    ),
    "Opportunity": (
        "Id", s.REFERRAL_ID, s.DISQUALIFIED_REASON, "StageName", "IsClosed", "IsWon", "Amount",
        "CloseDate", "AccountId", "OwnerId", "LastModifiedDate", "SystemModstamp",
    ),
}


def outbound_message_name(obj: str) -> str:
    """The Outbound Message's API name on ``obj``."""
    return f"Referral_Sync_{obj}"


def flow_name(obj: str) -> str:
    """The record-triggered Flow that sends ``obj`` changes."""
    return f"Referral_Sync_{obj}_Changes"


def workflow(obj: str, endpoint_url: str, integration_user: str) -> dict[str, Any]:
    """The ``Workflow`` file of ``obj`` holding its Outbound Message definition."""
    return {
        "outboundMessages": [{
            "fullName": outbound_message_name(obj),
            "apiVersion": s.API_VERSION,
            "description": f"Sends referral {obj} changes to referral-sync.",
            "endpointUrl": endpoint_url,
            # Id is always sent; the rest in the order Salesforce sends them.
            "fields": list(OUTBOUND_FIELDS[obj]),
            # The session id is a live credential; referral-sync re-reads with its own.
            "includeSessionId": False,
            "integrationUser": integration_user,
            "name": f"Referral Sync {obj}",
            "protected": False,
            "useDeadLetterQueue": False,
        }],
    }


def _on_referral_records(obj: str, first_step: str, record_trigger: str,
                         trigger: str) -> dict[str, Any]:
    """A record-triggered Flow's start element: saves of ``obj`` records that carry a
    referral id, then ``first_step``."""
    return {
        "locationX": 50,
        "locationY": 0,
        "connector": {"targetReference": first_step},
        "filterLogic": "and",
        "filters": [{
            "field": s.REFERRAL_ID,
            "operator": "IsNull",
            "value": {"booleanValue": False},
        }],
        "object": obj,
        "recordTriggerType": record_trigger,
        "triggerType": trigger,
    }


def flow(obj: str) -> dict[str, Any]:
    """An after-save Flow on ``obj`` that sends the Outbound Message for referral records.

    It fires on every save of a record with a referral id; unchanged records are no-ops in
    referral-sync, which is cheaper to reason about than a change formula per field.
    """
    action = "Send_to_referral_sync"
    return {
        "actionCalls": [{
            "name": action,
            "label": "Send to referral-sync",
            "locationX": 176,
            "locationY": 323,
            "actionName": f"{obj}.{outbound_message_name(obj)}",
            "actionType": "outboundMessage",
            "flowTransactionModel": "CurrentTransaction",
        }],
        "apiVersion": s.API_VERSION,
        "description": f"Notifies referral-sync when a referral {obj} changes.",
        "interviewLabel": f"Referral Sync {obj} Changes {{!$Flow.CurrentDateTime}}",
        "label": f"Referral Sync - {obj} changes",
        "processType": "AutoLaunchedFlow",
        "start": _on_referral_records(obj, action, "CreateAndUpdate", "RecordAfterSave"),
        "status": "Active",
    }


#: The before-save Flow that marks Opportunities created from referral Leads.
CONVERSION_FLOW = "Referral_Sync_Opportunity_Converted"
#: ``Referral_Status__c`` it sets: what referral-sync itself writes for "opportunity".
CONVERTED_STATUS = StatusMapping().label(ReferralStatus.OPPORTUNITY)


def conversion_flow() -> dict[str, Any]:
    """A before-save Flow on Opportunity create that sets the referral status to
    "Opportunity" when the record carries a referral id.

    Lead conversion copies the Lead's status ("Qualified") through the field mapping; fixing
    it in the same save costs referral-sync no API call and leaves no window in which AEs
    see the wrong status. Before-save, because a field update on the triggering record is
    free there (no second DML, no re-fired automation).
    """
    assignment = "Set_referral_status"
    return {
        "apiVersion": s.API_VERSION,
        "assignments": [{
            "name": assignment,
            "label": "Set referral status",
            "locationX": 176,
            "locationY": 287,
            "assignmentItems": [{
                "assignToReference": f"$Record.{s.REFERRAL_STATUS}",
                "operator": "Assign",
                "value": {"stringValue": CONVERTED_STATUS},
            }],
        }],
        "description": (f"Sets {s.REFERRAL_STATUS} to {CONVERTED_STATUS} on a new referral "
                        "Opportunity (lead conversion copies the Lead's status)."),
        "interviewLabel": "Referral Sync Opportunity Converted {!$Flow.CurrentDateTime}",
        "label": "Referral Sync - Opportunity converted",
        "processType": "AutoLaunchedFlow",
        "start": _on_referral_records("Opportunity", assignment, "Create", "RecordBeforeSave"),
        "status": "Active",
    }


_LEAD_COLUMNS = ["FULL_NAME", "LEAD.COMPANY", s.REFERRAL_STATUS, s.REFERRER_CONTACT,
                 s.REFERRED_AT, "LEAD.STATUS"]


def lead_list_views() -> dict[str, dict[str, Any]]:
    """Lead list views by API name: the AE's referrals, and referrals nobody touched yet."""
    referral = {"field": s.REFERRAL_FLAG, "operation": "equals", "value": "1"}
    return {
        "My_Referrals": {
            "fullName": "My_Referrals",
            "columns": _LEAD_COLUMNS,
            "filterScope": "Mine",
            "filters": [referral],
            "label": "My referrals",
        },
        "Referrals_Awaiting_First_Touch": {
            "fullName": "Referrals_Awaiting_First_Touch",
            "columns": ["FULL_NAME", "LEAD.COMPANY", "CORE.USERS.ALIAS", s.REFERRED_AT,
                        s.FIRST_ACTION, s.ROUTING_REASON],
            "filterScope": "Everything",
            "filters": [
                referral,
                {"field": "LEAD.STATUS", "operation": "equals", "value": "Open - Not Contacted"},
            ],
            "label": "Referrals awaiting first touch",
        },
    }
