"""The HubSpot schema referral-sync installs, defined once, as data.

- A ``referral`` property group on contacts, companies, deals and tasks.
- Referral properties on contacts (the referral record) and deals (attribution; ``referral_id``
  is unique there, so creating a deal twice for one referral is impossible).
- ``referral_account_status`` on companies (empty = good standing).
- A paired contact-to-contact association label: the referred contact's referrer shows as
  "Referrer", and the referrer sees the contacts they referred as "Referred".
- The ``referral_reward`` custom object (Enterprise portals only), which also keeps the
  referrer notice that announced the reward. **Fallback** where custom objects are not
  allowed: the ``referral_reward_*`` properties on the deal carry each milestone's amount,
  state and notice, and the local ledger stays the system of record.

Property names and ``hasUniqueValue`` cannot change after creation (HubSpot rule), so these
names are a contract with installed portals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from referral_sync.models import Milestone, ReferralStatus, RewardState, RewardType

GROUP = "referral"
GROUP_LABEL = "Referral program"
OBJECT_TYPES = ("contacts", "companies", "deals", "tasks")


@dataclass(frozen=True)
class PropertySpec:
    """One property as HubSpot's properties API describes it."""

    name: str
    label: str
    type: str
    field_type: str
    description: str = ""
    options: tuple[tuple[str, str], ...] = ()
    unique: bool = False

    def payload(self, group: str = GROUP) -> dict[str, Any]:
        """The ``PropertyCreate`` JSON."""
        body: dict[str, Any] = {
            "name": self.name, "label": self.label, "type": self.type,
            "fieldType": self.field_type, "groupName": group, "description": self.description,
            "formField": False,
        }
        if self.options:
            body["options"] = [
                {"label": label, "value": value, "displayOrder": i, "hidden": False}
                for i, (value, label) in enumerate(self.options)
            ]
        if self.unique:
            body["hasUniqueValue"] = True
        return body


def _text(name: str, label: str, description: str = "", *, unique: bool = False) -> PropertySpec:
    return PropertySpec(name, label, "string", "text", description, unique=unique)


def _area(name: str, label: str, description: str = "") -> PropertySpec:
    return PropertySpec(name, label, "string", "textarea", description)


def _when(name: str, label: str) -> PropertySpec:
    return PropertySpec(name, label, "datetime", "date")


def _money(name: str, label: str) -> PropertySpec:
    return PropertySpec(name, label, "number", "number")


def _choice(name: str, label: str, values: list[str], description: str = "") -> PropertySpec:
    options = tuple((v, v.replace("_", " ").capitalize()) for v in values)
    return PropertySpec(name, label, "enumeration", "select", description, options)


def _flag(name: str, label: str) -> PropertySpec:
    return PropertySpec(name, label, "bool", "booleancheckbox",
                        options=(("true", "Yes"), ("false", "No")))


_STATUSES = [s.value for s in ReferralStatus]
_NOTICE = "What the referrer was told about this reward, and when (property history)"
_REWARD_STATES = [s.value for s in RewardState]

ATTRIBUTION: tuple[PropertySpec, ...] = (
    _flag("referral_is_referral", "Referred"),
    _text("referral_referrer", "Referred by", "E-mail address of the referrer"),
    _text("referral_referrer_name", "Referrer name"),
    _text("referral_program", "Referral program"),
    _area("referral_routing_reason", "Referral routing reason", "Why this owner got it"),
    _text("referral_policy_version", "Referral policy version"),
    _choice("referral_first_action", "Referral first action", ["call", "email"]),
    _choice("referral_intro_strength", "Referral intro strength", ["strong", "weak"]),
    _when("referral_submitted_at", "Referral submitted"),
)

CONTACT_PROPERTIES: tuple[PropertySpec, ...] = (
    _text("referral_id", "Referral ID"),
    *ATTRIBUTION,
    _choice("referral_status", "Referral status", _STATUSES,
            "Set to Qualified or Disqualified when you have worked the referral"),
    _area("referral_disqualified_reason", "Referral disqualified reason",
          "Told to the referrer"),
    _text("referral_reward_status", "Referral reward status"),
    _when("referral_qualified_at", "Referral qualified"),
    _when("referral_closed_at", "Referral closed"),
)


def _reward_fallback() -> tuple[PropertySpec, ...]:
    specs: list[PropertySpec] = []
    for milestone in Milestone:
        label = milestone.value.replace("_", " ")
        specs.append(_money(f"referral_reward_{milestone.value}_amount",
                            f"Referral reward ({label}) amount"))
        specs.append(_choice(f"referral_reward_{milestone.value}_state",
                             f"Referral reward ({label}) state", _REWARD_STATES))
        specs.append(_area(f"referral_reward_{milestone.value}_notice",
                           f"Referral reward ({label}) notice", _NOTICE))
    specs.append(_text("referral_reward_currency", "Referral reward currency"))
    return tuple(specs)


DEAL_PROPERTIES: tuple[PropertySpec, ...] = (
    _text("referral_id", "Referral ID", "One deal per referral (unique)", unique=True),
    *ATTRIBUTION,
    *_reward_fallback(),
)

COMPANY_PROPERTIES: tuple[PropertySpec, ...] = (
    _choice("referral_account_status", "Referral account status",
            ["at_risk", "collections", "dispute", "trial", "free"],
            "Empty means good standing; any value stops the account's contacts referring"),
)

TASK_PROPERTIES: tuple[PropertySpec, ...] = (
    _text("referral_task_key", "Referral task key", "Makes task creation idempotent"),
)

PROPERTIES: dict[str, tuple[PropertySpec, ...]] = {
    "contacts": CONTACT_PROPERTIES,
    "companies": COMPANY_PROPERTIES,
    "deals": DEAL_PROPERTIES,
    "tasks": TASK_PROPERTIES,
}


@dataclass(frozen=True)
class LabelSpec:
    """A paired USER_DEFINED association label."""

    from_type: str
    to_type: str
    name: str
    label: str
    inverse_label: str


REFERRER_LABEL = LabelSpec("contacts", "contacts", "referral_referrer", "Referrer", "Referred")


@dataclass(frozen=True)
class CustomObjectSpec:
    """A custom object schema (``ObjectSchemaEgg``)."""

    name: str
    singular: str
    plural: str
    primary: str
    properties: tuple[PropertySpec, ...]
    searchable: tuple[str, ...]
    secondary: tuple[str, ...]
    associated: tuple[str, ...] = field(default=("CONTACT", "DEAL"))

    def payload(self) -> dict[str, Any]:
        """The JSON for ``POST /crm-object-schemas/v3/schemas``."""
        props = []
        for spec in self.properties:
            body = spec.payload()
            body.pop("groupName")
            body.pop("formField")
            body["isPrimaryDisplayLabel"] = spec.name == self.primary
            props.append(body)
        return {
            "name": self.name,
            "description": "One reward per referral milestone, written by referral-sync",
            "labels": {"singular": self.singular, "plural": self.plural},
            "primaryDisplayProperty": self.primary,
            "secondaryDisplayProperties": list(self.secondary),
            "searchableProperties": list(self.searchable),
            "requiredProperties": [self.primary],
            "properties": props,
            "associatedObjects": list(self.associated),
        }


REWARD_OBJECT = CustomObjectSpec(
    name="referral_reward",
    singular="Referral reward",
    plural="Referral rewards",
    primary="reward_key",
    properties=(
        _text("reward_key", "Reward key", "referral id : milestone", unique=True),
        _text("referral_id", "Referral ID"),
        _choice("milestone", "Milestone", [m.value for m in Milestone]),
        _money("amount", "Amount"),
        _text("currency", "Currency"),
        _choice("reward_type", "Reward type", [t.value for t in RewardType]),
        _choice("state", "State", _REWARD_STATES),
        _text("tier", "Tier"),
        _text("referrer_email", "Referrer e-mail"),
        _text("program", "Program"),
        _when("earned_at", "Earned"),
        _when("hold_until", "Hold until"),
        _flag("requires_approval", "Requires approval"),
        _area("referrer_notice", "Referrer notice", _NOTICE),
        _when("referrer_notified_at", "Referrer notified"),
    ),
    searchable=("reward_key", "referral_id", "referrer_email"),
    secondary=("state", "amount"),
)
