"""HubSpot webhook bodies → ChangeEvents, without any API call (the receiver must answer fast).

Two shapes arrive at ``POST /webhooks/hubspot``:

- **App subscriptions**: a JSON array of up to 100 events (``subscriptionType`` such as
  ``contact.propertyChange``; older docs call it ``eventType``; generic ``object.*`` events
  carry ``objectTypeId``). Order is not guaranteed and events repeat.
- **Workflow "Send a webhook"**: one JSON object, either the record's properties
  ("include all properties": ``{"objectId": …, "properties": {"x": {"value": …}}}``) or a
  customised flat body (``{"hs_object_id": …, "dealstage": …}``).

``eventId`` is "not guaranteed to be unique" (webhooks guide), so ``event_id`` is the
``eventId`` plus a digest of what the event says (portal, type, object, property, value,
time): a redelivery gives the same id, a different event with a recycled ``eventId`` does
not. Events we do not handle, other portals' events and echoes of our own writes are kept
(stored, then ignored) with ``noop_reason`` set, so nothing is lost and nothing is done twice.
A deal-stage change carries no status here: what a stage means needs the pipeline metadata,
and a won deal's reward needs its amount, both of which the worker reads with the deal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from referral_sync.errors import PermanentError
from referral_sync.hubspot.translate import PROVIDER
from referral_sync.models import ChangeEvent, CrmObject, ReferralStatus

_PREFIXES = {"contact": CrmObject.CONTACT, "company": CrmObject.COMPANY,
             "deal": CrmObject.DEAL}
_TYPE_IDS = {"0-1": CrmObject.CONTACT, "0-2": CrmObject.COMPANY, "0-3": CrmObject.DEAL}
_HANDLED = {"creation", "propertyChange", "deletion", "associationChange", "merge", "restore",
            "privacyDeletion"}
_IDENTITY = ("portalId", "subscriptionType", "eventType", "objectTypeId", "objectId",
             "propertyName", "propertyValue", "occurredAt", "changeFlag", "associationType",
             "fromObjectId", "toObjectId", "associationRemoved", "primaryObjectId",
             "mergedObjectIds")
_KEEP = {"subscriptionType": "subscription_type", "propertyName": "property_name",
         "propertyValue": "property_value", "changeSource": "change_source",
         "sourceId": "source_id", "portalId": "portal_id", "appId": "app_id",
         "attemptNumber": "attempt", "eventId": "hubspot_event_id",
         "changeFlag": "change_flag", "associationType": "association_type",
         "fromObjectId": "from_object_id", "toObjectId": "to_object_id",
         "associationRemoved": "association_removed", "objectTypeId": "object_type_id"}
_DEAL_HINTS = {"dealstage", "dealname", "pipeline", "amount", "hs_is_closed_won"}


class MalformedEvents(PermanentError):
    """The body is not JSON, or neither an array of events nor a workflow object."""


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _when(value: object, default: datetime) -> datetime:
    try:
        return datetime.fromtimestamp(int(str(value)) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return default


def _small(value: object) -> object:
    if isinstance(value, str):
        return value[:1000]
    return value if value is None or isinstance(value, bool | int | float) else str(value)[:1000]


def _object_of(item: dict[str, Any]) -> tuple[CrmObject | None, str]:
    kind = str(item.get("subscriptionType") or item.get("eventType") or "")
    prefix, _, action = kind.partition(".")
    obj = _TYPE_IDS.get(str(item.get("objectTypeId"))) if prefix == "object" \
        else _PREFIXES.get(prefix)
    return (obj if action in _HANDLED else None), kind


def _record_of(item: dict[str, Any], obj: CrmObject) -> tuple[CrmObject, str]:
    """Association changes between a contact and a deal are the contact's news: the store
    knows referrals by their contact before it knows their deal."""
    assoc = str(item.get("associationType") or "")
    if assoc == "CONTACT_TO_DEAL":
        return CrmObject.CONTACT, str(item.get("fromObjectId") or "")
    if assoc == "DEAL_TO_CONTACT":
        return CrmObject.CONTACT, str(item.get("toObjectId") or "")
    for key in ("objectId", "fromObjectId", "primaryObjectId"):
        if item.get(key) is not None:
            return obj, str(item[key])
    return obj, ""


def _is_echo(item: dict[str, Any], app_id: str | None) -> bool:
    source = str(item.get("sourceId") or "")
    if not app_id or not source or source.lower().startswith("userid"):
        return False
    return source.rsplit(":", 1)[-1].strip() == app_id


def _facts(obj: CrmObject, prop: str, value: object) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    text = "" if value is None else str(value)
    if prop == "referral_id" and text:
        facts["referral_id"] = text
    elif obj is CrmObject.CONTACT and prop == "referral_status":
        with contextlib.suppress(ValueError):
            facts["status"] = ReferralStatus(text)
        # A qualification needs nothing but the status, so processing can trust it without
        # a read; a disqualification also needs its reason, another property's event.
        facts["complete"] = facts.get("status") is ReferralStatus.QUALIFIED
    elif obj is CrmObject.CONTACT and prop == "referral_disqualified_reason" and text:
        facts["reason"] = text[:1000]
    elif obj is CrmObject.DEAL and prop == "amount" and text:
        with contextlib.suppress(InvalidOperation):
            facts["amount"] = Decimal(text)
    return facts


def subscription_event(item: object, *, received_at: datetime, app_id: str | None = None,
                       portal_id: str | None = None) -> ChangeEvent:
    """One element of an app-subscription batch as a ChangeEvent (never raises)."""
    if not isinstance(item, dict):
        return ChangeEvent(provider=PROVIDER, event_id=f"bad-{_digest(item)}",
                           object_type=CrmObject.OTHER, record_id="", occurred_at=received_at,
                           noop_reason="not an event object", fields={"raw": _small(item)})
    obj, kind = _object_of(item)
    object_type, record_id = _record_of(item, obj or CrmObject.OTHER)
    event_id = f"{item.get('eventId', 'x')}-{_digest({k: item.get(k) for k in _IDENTITY})}"
    noop = None
    if obj is None:
        noop = f"unsupported subscription type {kind[:60]!r}"
    elif portal_id and str(item.get("portalId", "")) not in ("", portal_id):
        noop = f"event for portal {str(item.get('portalId'))[:20]}, not ours"
    elif _is_echo(item, app_id):
        noop = "echo of our own write"
    facts = _facts(object_type, str(item.get("propertyName") or ""), item.get("propertyValue"))
    return ChangeEvent(
        provider=PROVIDER, event_id=event_id[:200], object_type=object_type,
        record_id=record_id, occurred_at=_when(item.get("occurredAt"), received_at),
        fields={new: _small(item[old]) for old, new in _KEEP.items() if old in item},
        noop_reason=noop, **facts,
    )


def _flatten(body: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    nested = body.get("properties")
    if isinstance(nested, dict):
        for key, value in nested.items():
            flat[str(key)] = value.get("value") if isinstance(value, dict) else value
    for key, value in body.items():
        if key != "properties" and not isinstance(value, dict | list):
            flat.setdefault(str(key), value)
    return dict(list(flat.items())[:200])


def workflow_event(body: dict[str, Any], raw: bytes, *, received_at: datetime,
                   query: Mapping[str, str] | None = None) -> ChangeEvent:
    """A workflow "Send a webhook" body as a ChangeEvent (never raises)."""
    flat = _flatten(body)
    hint = str(flat.get("objectType") or flat.get("object_type") or
               (query or {}).get("object") or "").lower().rstrip("s")
    if hint in _PREFIXES:
        obj = _PREFIXES[hint]
    else:
        obj = CrmObject.DEAL if _DEAL_HINTS & flat.keys() else CrmObject.CONTACT
    record = next((flat[k] for k in ("hs_object_id", "objectId", "vid", "id")
                   if flat.get(k) not in (None, "")), None)
    modified = flat.get("hs_lastmodifieddate") or flat.get("lastmodifieddate")
    facts: dict[str, Any] = {}
    for prop in ("referral_id", "referral_status", "referral_disqualified_reason", "amount"):
        if flat.get(prop) not in (None, ""):
            facts.update(_facts(obj, prop, flat[prop]))
    return ChangeEvent(
        provider=PROVIDER, event_id=f"wf-{hashlib.sha256(raw).hexdigest()[:32]}",
        object_type=obj, record_id="" if record is None else str(record),
        occurred_at=_when(modified, received_at) if modified else received_at,
        fields={"source": "workflow", **{k: _small(v) for k, v in flat.items()}},
        noop_reason=None if record is not None else "workflow webhook without a record id",
        **facts,
    )


def parse_events(raw: bytes, *, received_at: datetime, app_id: str | None = None,
                 portal_id: str | None = None,
                 query: Mapping[str, str] | None = None) -> list[ChangeEvent]:
    """Every event in a webhook body, in the order received.

    Raises:
        MalformedEvents: the body is not UTF-8 JSON, or is JSON of another shape.
    """
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedEvents("the body is not UTF-8 JSON") from exc
    if isinstance(data, list):
        return [subscription_event(item, received_at=received_at, app_id=app_id,
                                   portal_id=portal_id) for item in data]
    if isinstance(data, dict):
        return [workflow_event(data, raw, received_at=received_at, query=query)]
    raise MalformedEvents("expected a JSON array of events or a workflow object")
