"""The Salesforce schema referral-sync installs, defined once.

Everything here is data in Metadata API terms (dicts whose keys are the Metadata API element
names). ``install.py`` sends it through the Metadata API (``referral-sync install``) and
``sfdx.py`` writes it as the source-format project under ``deploy/salesforce`` — a test keeps
the two in step. Field API names used by the adapter are constants here too, so a rename
cannot leave the adapter writing a field that is no longer installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from referral_sync.models import RewardState, RewardType

API_VERSION = "62.0"
REWARD_OBJECT = "Referral_Reward__c"
PERMISSION_SET = "Referral_Sync"

# Fields on Lead / Contact / Account / Opportunity.
REFERRAL_ID = "Referral_Id__c"
REFERRAL_FLAG = "Referral_Source__c"
REFERRER_CONTACT = "Referrer_Contact__c"
REFERRER_ACCOUNT = "Referrer_Account__c"
REFERRAL_STATUS = "Referral_Status__c"
PROGRAM = "Referral_Program__c"
ROUTING_REASON = "Referral_Routing_Reason__c"
POLICY_VERSION = "Referral_Policy_Version__c"
FIRST_ACTION = "Referral_First_Action__c"
REWARD_STATUS = "Referral_Reward_Status__c"
REFERRED_AT = "Referred_At__c"
QUALIFIED_AT = "Referral_Qualified_At__c"
DISQUALIFIED_REASON = "Referral_Disqualified_Reason__c"
ACCOUNT_STATUS = "Referral_Account_Status__c"
TASK_KEY = "Referral_Task_Key__c"

# Fields on Referral_Reward__c.
REWARD_KEY = "Reward_Key__c"

#: Picklist values of ``Referral_Status__c``, in the order AEs see them.
STATUS_VALUES = (
    "Submitted", "Qualified", "Disqualified", "Nurture", "Opportunity", "Closed Won",
    "Closed Lost", "Duplicate", "Ineligible",
)
REWARD_STATUS_VALUES = tuple(state.value.capitalize() for state in RewardState)
FIRST_ACTION_VALUES = ("Call", "Email")
ACCOUNT_STATUS_VALUES = ("at_risk", "collections", "dispute", "trial", "free")


@dataclass(frozen=True)
class FieldSpec:
    """One custom field, compactly; ``metadata()`` expands it to Metadata API terms."""

    name: str
    label: str
    type: str
    description: str
    length: int | None = None
    values: tuple[str, ...] = ()
    restricted: bool = True
    reference_to: str | None = None
    relationship: str | None = None
    external_id: bool = False
    unique: bool = False

    def metadata(self, obj: str, *, qualified: bool = True) -> dict[str, Any]:
        """The CustomField component; ``qualified`` gives ``Object.Field`` as the fullName
        (Metadata API CRUD) instead of the bare name (source-format files)."""
        data: dict[str, Any] = {
            "fullName": f"{obj}.{self.name}" if qualified else self.name,
            "description": self.description,
            "label": self.label,
            "type": self.type,
        }
        if self.type == "Checkbox":
            data["defaultValue"] = "false"
        elif self.type in ("Text", "Email", "LongTextArea", "Lookup", "Picklist", "Date",
                           "DateTime", "Currency"):
            data["required"] = False
        if self.type == "Text":
            data.update(length=self.length or 255, externalId=self.external_id,
                        unique=self.unique)
            if self.unique:
                data["caseSensitive"] = False
        elif self.type == "LongTextArea":
            data.update(length=self.length or 32768, visibleLines=5)
        elif self.type == "Currency":
            data.update(precision=16, scale=2)
        elif self.type == "Lookup":
            data.update(
                deleteConstraint="SetNull",
                referenceTo=self.reference_to,
                relationshipLabel=(self.relationship or "").replace("_", " "),
                relationshipName=self.relationship,
            )
        elif self.type == "Picklist":
            data["valueSet"] = {
                "restricted": self.restricted,
                "valueSetDefinition": {
                    "sorted": False,
                    "value": [
                        {"fullName": v, "default": False, "label": _label(v)}
                        for v in self.values
                    ],
                },
            }
        return data


def _label(value: str) -> str:
    return value.replace("_", " ").capitalize() if "_" in value or value.islower() else value


def _attribution_fields(relationship: str, *, unique_id: bool) -> list[FieldSpec]:
    """Fields every referred record carries, so attribution survives lead conversion."""
    return [
        FieldSpec(REFERRAL_FLAG, "Referral", "Checkbox",
                  "Came in through the referral program (set by referral-sync)."),
        FieldSpec(REFERRAL_ID, "Referral ID", "Text",
                  "referral-sync's id of the referral; maps CRM changes back to it.",
                  length=64, external_id=True, unique=unique_id),
        FieldSpec(REFERRER_CONTACT, "Referrer", "Lookup", "The customer contact who referred.",
                  reference_to="Contact", relationship=relationship),
        FieldSpec(REFERRER_ACCOUNT, "Referrer Account", "Lookup", "The referrer's account.",
                  reference_to="Account", relationship=relationship),
        FieldSpec(PROGRAM, "Referral Program", "Text", "Referral program id.", length=80),
        FieldSpec(REFERRED_AT, "Referred At", "DateTime", "When the referral was submitted."),
    ]


def _pipeline_fields() -> list[FieldSpec]:
    """Fields AEs work with on Leads and Opportunities."""
    return [
        FieldSpec(REFERRAL_STATUS, "Referral Status", "Picklist",
                  "Set to Qualified or Disqualified when you have assessed the referral.",
                  values=STATUS_VALUES),
        FieldSpec(ROUTING_REASON, "Referral Routing Reason", "Text",
                  "Why this owner got the referral.", length=255),
        FieldSpec(POLICY_VERSION, "Referral Policy Version", "Text",
                  "Program policy version and hash that routed the referral.", length=80),
        FieldSpec(FIRST_ACTION, "Referral First Action", "Picklist",
                  "What to do first: call for a strong intro, e-mail for a weak one.",
                  values=FIRST_ACTION_VALUES),
        FieldSpec(REWARD_STATUS, "Referral Reward Status", "Text",
                  "Reward state per milestone, e.g. 'qualified: fulfilled, closed_won: earned'.",
                  length=255),
        FieldSpec(QUALIFIED_AT, "Referral Qualified At", "DateTime",
                  "When the referral was qualified."),
        FieldSpec(DISQUALIFIED_REASON, "Referral Disqualified Reason", "Text",
                  "Told to the referrer when the referral is disqualified.", length=255),
    ]


def _reward_fields() -> list[FieldSpec]:
    return [
        FieldSpec(REWARD_KEY, "Reward Key", "Text",
                  "referral id and milestone; the idempotency key of the upsert.",
                  length=120, external_id=True, unique=True),
        FieldSpec(REFERRAL_ID, "Referral ID", "Text", "referral-sync's id of the referral.",
                  length=64, external_id=True),
        FieldSpec("Lead__c", "Referral Lead", "Lookup", "The referral's Lead.",
                  reference_to="Lead", relationship="Referral_Rewards"),
        FieldSpec("Opportunity__c", "Opportunity", "Lookup", "The won Opportunity.",
                  reference_to="Opportunity", relationship="Referral_Rewards"),
        FieldSpec("Referrer_Email__c", "Referrer Email", "Email", "Who earns the reward."),
        FieldSpec("Milestone__c", "Milestone", "Picklist", "What earned the reward.",
                  values=("qualified", "closed_won")),
        FieldSpec("Amount__c", "Amount", "Currency", "Reward amount."),
        FieldSpec("Currency__c", "Currency", "Text", "ISO currency code.", length=3),
        FieldSpec("Status__c", "Status", "Picklist", "Earned, approved, fulfilled or reversed.",
                  values=REWARD_STATUS_VALUES),
        FieldSpec("Reward_Type__c", "Reward Type", "Picklist", "What the referrer receives.",
                  values=tuple(t.value for t in RewardType)),
        FieldSpec("Tier__c", "Tier", "Text", "Referrer tier when earned.", length=40),
        FieldSpec(PROGRAM, "Referral Program", "Text", "Referral program id.", length=80),
        FieldSpec("Requires_Approval__c", "Requires Approval", "Checkbox",
                  "Above the program's approval threshold."),
        FieldSpec("Earned_At__c", "Earned At", "DateTime", "When the milestone was reached."),
        FieldSpec("Hold_Until__c", "Hold Until", "DateTime",
                  "Clawback window end; paid out after this."),
        FieldSpec("Reasoning__c", "Reasoning", "LongTextArea", "How the amount was computed."),
    ]


#: Custom fields per object, in install order (the reward object comes first).
FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    REWARD_OBJECT: tuple(_reward_fields()),
    "Lead": tuple(_attribution_fields("Referred_Leads", unique_id=True) + _pipeline_fields()),
    "Contact": tuple(_attribution_fields("Referred_Contacts", unique_id=False)),
    "Account": tuple(
        _attribution_fields("Referred_Accounts", unique_id=False)
        + [FieldSpec(ACCOUNT_STATUS, "Referral Account Status", "Picklist",
                     "Blocks referrals from this account when set (empty = good standing).",
                     values=ACCOUNT_STATUS_VALUES, restricted=False)]
    ),
    "Opportunity": tuple(
        _attribution_fields("Referred_Opportunities", unique_id=True) + _pipeline_fields()
    ),
    # Fields on Activity appear on Task and Event; the key makes task creation idempotent.
    "Activity": (
        FieldSpec(TASK_KEY, "Referral Task Key", "Text",
                  "Idempotency key of tasks created by referral-sync.", length=120,
                  external_id=True),
    ),
}


def reward_object() -> dict[str, Any]:
    """The ``Referral_Reward__c`` CustomObject (without its fields)."""
    return {
        "fullName": REWARD_OBJECT,
        "deploymentStatus": "Deployed",
        "description": "A referrer's reward per referral milestone (written by referral-sync).",
        "enableActivities": False,
        "enableReports": True,
        "enableSearch": True,
        "label": "Referral Reward",
        "nameField": {"displayFormat": "RR-{000000}", "label": "Reward Number",
                      "type": "AutoNumber"},
        "pluralLabel": "Referral Rewards",
        # A lookup (not master-detail) so a qualified reward exists before any opportunity.
        "sharingModel": "ReadWrite",
    }


def custom_fields() -> Iterator[tuple[str, FieldSpec]]:
    """Every (object, field) pair referral-sync installs, in install order."""
    for obj, specs in FIELDS.items():
        for spec in specs:
            yield obj, spec


def permission_set() -> dict[str, Any]:
    """Field access to every installed field plus reward-object access."""
    return {
        "fullName": PERMISSION_SET,
        "description": "Read and edit referral-sync fields; grant to AEs and the integration user.",
        "fieldPermissions": [
            {"editable": True, "field": f"{obj}.{spec.name}", "readable": True}
            for obj, spec in sorted(custom_fields(), key=lambda p: (p[0], p[1].name))
        ],
        "hasActivationRequired": False,
        "label": "Referral Sync",
        "objectPermissions": [
            {"allowCreate": True, "allowDelete": False, "allowEdit": True, "allowRead": True,
             "modifyAllRecords": False, "object": REWARD_OBJECT, "viewAllRecords": False},
        ],
    }


#: Lead fields copied to each conversion target, so attribution follows the referral.
CONVERT_TARGETS = ("Account", "Contact", "Opportunity")


def lead_convert_mappings() -> list[dict[str, Any]]:
    """``LeadConvertSettings.objectMapping`` entries for the referral fields."""
    lead_fields = {spec.name for spec in FIELDS["Lead"]}
    mappings = []
    for target in CONVERT_TARGETS:
        shared = [s.name for s in FIELDS[target] if s.name in lead_fields]
        mappings.append({
            "inputObject": "Lead",
            "mappingFields": [{"inputField": n, "outputField": n} for n in shared],
            "outputObject": target,
        })
    return mappings


def lead_convert_settings() -> dict[str, Any]:
    """The LeadConvertSettings component holding only referral-sync's mappings."""
    return {
        "fullName": "LeadConvertSettings",
        "allowOwnerChange": True,
        "objectMapping": lead_convert_mappings(),
        "opportunityCreationOptions": "VisibleOptional",
    }
