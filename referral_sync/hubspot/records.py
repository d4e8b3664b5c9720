"""Referral ↔ HubSpot property values.

HubSpot property values travel as strings: numbers as decimal strings, booleans as
``"true"``/``"false"``, datetimes as epoch milliseconds (we write) or ISO 8601 (HubSpot
returns). Read-only properties are never written: ``hs_analytics_source`` above all (HubSpot
sets original source itself; writing it is refused, and overwriting attribution is wrong).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from referral_sync.hubspot import spec
from referral_sync.models import Referral, ReferralStatus

log = logging.getLogger(__name__)

READ_ONLY = frozenset({
    "hs_analytics_source", "hs_analytics_source_data_1", "hs_analytics_source_data_2",
    "hs_latest_source", "hs_object_id", "hs_email_domain", "lastmodifieddate",
    "hs_lastmodifieddate", "hs_is_closed", "hs_is_closed_won", "associatedcompanyid",
})

#: Logical field names the service passes to ``update_referral`` → our property names.
FIELD_ALIASES = {
    "referral_status": "referral_status",
    "status": "referral_status",
    "reward_status": "referral_reward_status",
    "disqualified_reason": "referral_disqualified_reason",
    "routing_reason": "referral_routing_reason",
    "owner_id": "hubspot_owner_id",
}

CONTACT_READ = sorted({
    "email", "hubspot_owner_id", "lastmodifieddate", "notes_last_contacted",
    "hs_last_sales_activity_timestamp", *(p.name for p in spec.CONTACT_PROPERTIES),
})
DEAL_READ = sorted({
    "dealname", "dealstage", "pipeline", "amount", "hubspot_owner_id", "hs_is_closed_won",
    "hs_is_closed", "closedate", "hs_lastmodifieddate", "referral_id",
    *(p.name for p in spec.ATTRIBUTION),
})


def to_millis(value: object) -> int | None:
    """Epoch milliseconds from HubSpot's ms strings, ISO 8601 strings or datetimes."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def to_datetime(value: object) -> datetime | None:
    """An aware UTC datetime from any HubSpot date value."""
    millis = to_millis(value)
    return datetime.fromtimestamp(millis / 1000, tz=UTC) if millis is not None else None


def text(value: object) -> str:
    """A Python value as HubSpot's string form (``""`` clears a property)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return str(to_millis(value))
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def writable(props: dict[str, object]) -> dict[str, str]:
    """``props`` as strings, without read-only properties (which HubSpot refuses)."""
    dropped = sorted(k for k in props if k in READ_ONLY)
    if dropped:
        log.warning("not writing read-only HubSpot properties", extra={"properties": dropped})
    return {k: text(v) for k, v in props.items() if k not in READ_ONLY}


def aliased(fields: dict[str, object] | None) -> dict[str, object]:
    """Service field names mapped to property names; unknown names pass through."""
    return {FIELD_ALIASES.get(k, k): v for k, v in (fields or {}).items()}


def attribution(referral: Referral) -> dict[str, object]:
    """What every referral record carries (contact and deal)."""
    return {
        "referral_is_referral": True,
        "referral_referrer": str(referral.referrer.email),
        "referral_referrer_name": referral.referrer.name,
        "referral_program": referral.program,
        "referral_routing_reason": referral.routing_reason,
        "referral_policy_version": referral.policy_version,
        "referral_first_action": referral.first_action,
        "referral_intro_strength": referral.intro_strength,
        "referral_submitted_at": referral.submitted_at,
    }


def contact_state(referral: Referral) -> dict[str, object]:
    """The referral's mutable facts, as contact properties."""
    closed = referral.reached_at(ReferralStatus.CLOSED_WON) or \
        referral.reached_at(ReferralStatus.CLOSED_LOST)
    return {
        "referral_status": referral.status,
        "referral_qualified_at": referral.reached_at(ReferralStatus.QUALIFIED),
        "referral_closed_at": closed,
        "referral_disqualified_reason": referral.disqualified_reason,
    }


def new_contact(referral: Referral, owner_id: str | None) -> dict[str, str]:
    """Properties of the referred contact at creation."""
    referee = referral.referee
    props: dict[str, object] = {
        "email": str(referee.email), "firstname": referee.first_name,
        "lastname": referee.last_name, "company": referee.company,
        "lifecyclestage": "lead", "referral_id": referral.id,
        **attribution(referral), **contact_state(referral),
    }
    optional = {"phone": referee.phone, "jobtitle": referee.title, "country": referee.country,
                "industry": referee.industry, "hubspot_owner_id": owner_id}
    props.update({k: v for k, v in optional.items() if v})
    return {k: v for k, v in writable(props).items() if v != ""}


def new_deal(referral: Referral, owner_id: str | None, pipeline: str,
             stage: str) -> dict[str, str]:
    """Properties of the referral's deal at creation."""
    props: dict[str, object] = {
        "dealname": f"{referral.referee.company} (referral)",
        "pipeline": pipeline, "dealstage": stage, "referral_id": referral.id,
        **attribution(referral),
    }
    if owner_id:
        props["hubspot_owner_id"] = owner_id
    if referral.amount is not None:
        props["amount"] = referral.amount
    return {k: v for k, v in writable(props).items() if v != ""}


def status_from(value: object, default: ReferralStatus) -> ReferralStatus:
    """The contact's ``referral_status`` as a status; unknown or empty values keep ``default``."""
    try:
        return ReferralStatus(str(value)) if value else default
    except ValueError:
        log.warning("unknown referral_status value in HubSpot", extra={"value": str(value)})
        return default


def props_of(record: dict[str, Any]) -> dict[str, Any]:
    """The ``properties`` of a HubSpot object answer."""
    value = record.get("properties")
    return value if isinstance(value, dict) else {}
