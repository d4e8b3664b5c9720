"""Install and check the HubSpot schema of :mod:`referral_sync.hubspot.spec`, idempotently.

A run reads what exists (groups and properties per object type, the association labels, the
custom object schemas: about ten calls), compares it with the spec and creates or updates only
what differs, so a second run changes nothing. "Already exists" answers (another installer
racing us) count as success. Structural differences HubSpot cannot change in place
(``type``, ``hasUniqueValue``) are reported as ``conflict`` for an admin to resolve.
Cosmetic edits an admin made (labels, descriptions, extra dropdown options) are left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from referral_sync.crm import SchemaChange
from referral_sync.errors import CrmPermanentError
from referral_sync.hubspot import spec
from referral_sync.hubspot.client import HubSpotClient, Reply
from referral_sync.hubspot.translate import PROVIDER, ErrorBody, is_conflict

log = logging.getLogger(__name__)

RewardMode = Literal["auto", "custom_object", "deal_properties"]
_UNSET: Any = object()
_FALLBACK_NOTE = ("Enterprise portals only; elsewhere rewards go to the deal's referral_reward_* "
                  "properties and the local ledger")


@dataclass(frozen=True)
class RewardSchema:
    """Where reward records live: the custom object's type id and its association type ids."""

    object_type: str
    to_contacts: int | None
    to_deals: int | None


def _change(obj: str, item: str, action: str, detail: str = "") -> SchemaChange:
    return SchemaChange(object_name=obj, item=item, action=action, detail=detail)


def _property_diff(want: spec.PropertySpec, have: dict[str, Any],
                   group: str) -> tuple[str, list[str]]:
    """("conflict" | "update" | "", reasons)."""
    if have.get("type") != want.type:
        return "conflict", [f"type is {have.get('type')}, expected {want.type}"]
    if bool(have.get("hasUniqueValue")) != want.unique:
        return "conflict", [f"hasUniqueValue is {bool(have.get('hasUniqueValue'))}"]
    reasons = []
    if have.get("fieldType") != want.field_type:
        reasons.append(f"fieldType {have.get('fieldType')} -> {want.field_type}")
    if have.get("groupName") not in (None, group):
        reasons.append(f"group {have.get('groupName')} -> {group}")
    present = {o.get("value") for o in have.get("options") or []}
    missing = [value for value, _ in want.options if value not in present]
    if missing:
        reasons.append("missing options " + ", ".join(missing))
    return ("update" if reasons else ""), reasons


def _update_payload(want: spec.PropertySpec, have: dict[str, Any],
                    group: str) -> dict[str, Any]:
    body: dict[str, Any] = {"fieldType": want.field_type, "groupName": group}
    if want.options:
        theirs = [o for o in have.get("options") or []
                  if o.get("value") not in {v for v, _ in want.options}]
        body["options"] = want.payload()["options"] + theirs
    return body


class SchemaManager:
    """Plans and applies the referral schema; caches the ids other modules need."""

    def __init__(self, client: HubSpotClient, *, reward_mode: RewardMode = "auto") -> None:
        self._client = client
        self._mode = reward_mode
        self._label_id: int | None = _UNSET
        self._reward: RewardSchema | None = _UNSET

    # -- public -------------------------------------------------------------------------
    def ensure(self, *, dry_run: bool) -> list[SchemaChange]:
        """Create or update what differs from the spec; returns the changes (planned ones when
        ``dry_run``). Empty when the portal is in sync."""
        changes: list[SchemaChange] = []
        for obj in spec.OBJECT_TYPES:
            changes += self._ensure_group(obj, dry_run)
            changes += self._ensure_properties(obj, spec.PROPERTIES[obj], spec.GROUP, dry_run)
        changes += self._ensure_label(dry_run)
        if self._mode != "deal_properties":
            changes += self._ensure_reward_object(dry_run)
        return changes

    def referrer_label_id(self) -> int | None:
        """The association type id of the "Referrer" label (referred contact → referrer)."""
        if self._label_id is _UNSET:
            self._label_id = self._read_labels()
        return self._label_id

    def reward_schema(self) -> RewardSchema | None:
        """The installed reward object, or None when rewards use the deal fallback."""
        if self._reward is _UNSET:
            found = self._find_schema() if self._mode != "deal_properties" else None
            self._reward = _reward_schema(found) if found else None
        return self._reward

    # -- property groups and properties ----------------------------------------------------
    def _ensure_group(self, obj: str, dry_run: bool) -> list[SchemaChange]:
        reply = self._client.call(f"{obj}.groups.get_all", self._client.groups.get_all, obj)
        if any(g.get("name") == spec.GROUP for g in reply.json().get("results", [])):
            return []
        if not dry_run:
            body = {"name": spec.GROUP, "label": spec.GROUP_LABEL, "displayOrder": -1}
            try:
                self._client.call(f"{obj}.groups.create", self._client.groups.create, obj, body)
            except CrmPermanentError as exc:
                if not is_conflict(exc):
                    raise
        return [_change(obj, f"group {spec.GROUP}", "create", spec.GROUP_LABEL)]

    def _ensure_properties(self, obj: str, specs: tuple[spec.PropertySpec, ...], group: str,
                           dry_run: bool,
                           known: list[dict[str, Any]] | None = None) -> list[SchemaChange]:
        if known is None:
            reply = self._client.call(f"{obj}.properties.get_all",
                                      self._client.properties.get_all, obj)
            known = reply.json().get("results", [])
        existing = {p.get("name"): p for p in known}
        changes, to_create = [], []
        for want in specs:
            have = existing.get(want.name)
            if have is None:
                to_create.append(want.payload(group))
                changes.append(_change(obj, f"property {want.name}", "create",
                                       f"{want.type}/{want.field_type}"))
                continue
            action, reasons = _property_diff(want, have, group)
            if not action:
                continue
            changes.append(_change(obj, f"property {want.name}", action, "; ".join(reasons)))
            if action == "update" and not dry_run:
                self._client.call(f"{obj}.properties.update", self._client.properties.update,
                                  obj, want.name, _update_payload(want, have, group))
        if to_create and not dry_run:
            self._create_properties(obj, to_create)
        return changes

    def _create_properties(self, obj: str, inputs: list[dict[str, Any]]) -> None:
        reply = self._client.call(f"{obj}.properties.batch_create",
                                  self._client.property_batch.create, obj, {"inputs": inputs})
        _raise_batch_errors(f"{obj}.properties.batch_create", reply)

    # -- association label ---------------------------------------------------------------
    def _read_labels(self) -> int | None:
        label = spec.REFERRER_LABEL
        reply = self._client.call("labels.get_all", self._client.labels.get_all,
                                  label.from_type, label.to_type)
        for item in reply.json().get("results", []):
            if item.get("category") == "USER_DEFINED" and item.get("label") == label.label:
                return int(item["typeId"])
        return None

    def _ensure_label(self, dry_run: bool) -> list[SchemaChange]:
        self._label_id = self._read_labels()
        label = spec.REFERRER_LABEL
        if self._label_id is not None:
            return []
        if not dry_run:
            body = {"name": label.name, "label": label.label, "inverseLabel": label.inverse_label}
            reply = self._client.call("labels.create", self._client.labels.create,
                                      label.from_type, label.to_type, body)
            ids = [int(r["typeId"]) for r in reply.json().get("results", [])
                   if r.get("label") == label.label]
            self._label_id = ids[0] if ids else self._read_labels()
        return [_change(f"{label.from_type}->{label.to_type}", f"label {label.label}", "create",
                        f"paired with {label.inverse_label}")]

    # -- the reward custom object -----------------------------------------------------------
    def _find_schema(self) -> dict[str, Any] | None:
        try:
            reply = self._client.call("schemas.get_all", self._client.schemas.get_all)
        except CrmPermanentError as exc:
            if self._mode == "auto" and exc.http_status in (400, 403):
                return None
            raise
        for schema in reply.json().get("results", []):
            if schema.get("name") == spec.REWARD_OBJECT.name:
                return dict(schema)
        return None

    def _ensure_reward_object(self, dry_run: bool) -> list[SchemaChange]:
        obj = spec.REWARD_OBJECT
        found = self._find_schema()
        if found is not None:
            self._reward = _reward_schema(found)
            group = next((p.get("groupName") for p in found.get("properties", [])
                          if p.get("groupName")), f"{obj.name}_information")
            type_id = str(found["objectTypeId"])
            # The schema lists its properties: no separate properties read needed.
            return [c.model_copy(update={"object_name": obj.name}) for c in
                    self._ensure_properties(type_id, obj.properties, group, dry_run,
                                            list(found.get("properties", [])))]
        change = _change(obj.name, "custom object", "create", _FALLBACK_NOTE)
        if dry_run:
            return [change]
        try:
            reply = self._client.call("schemas.create", self._client.schemas.create,
                                      obj.payload())
        except CrmPermanentError as exc:
            if self._mode == "auto" and exc.http_status in (400, 403):
                log.warning("custom objects not available; rewards use deal properties",
                            extra={"hubspot_error": ErrorBody.parse(exc.body).category})
                self._reward = None
                return []
            raise
        self._reward = _reward_schema(reply.json())
        return [change.model_copy(update={"detail": self._reward.object_type})]


def _reward_schema(schema: dict[str, Any]) -> RewardSchema:
    """Type id and association type ids (contacts ``0-1``, deals ``0-3``) of the schema."""
    type_id = str(schema["objectTypeId"])
    found: dict[str, int] = {}
    for assoc in schema.get("associations", []):
        if str(assoc.get("fromObjectTypeId")) == type_id:
            found.setdefault(str(assoc.get("toObjectTypeId")), int(assoc["id"]))
    return RewardSchema(object_type=type_id, to_contacts=found.get("0-1"),
                        to_deals=found.get("0-3"))


def _raise_batch_errors(op: str, reply: Reply) -> None:
    """A 207 answer lists per-input errors; "already exists" is success for an installer."""
    problems = []
    for error in reply.json().get("errors", []):
        body = ErrorBody.parse(error)
        if body.category in ("OBJECT_ALREADY_EXISTS", "CONFLICT") or \
                "already exists" in body.message.lower():
            continue
        problems.append(f"{body.category}: {body.message}")
    if problems:
        raise CrmPermanentError(f"HubSpot {op} partly failed: " + "; ".join(problems),
                                provider=PROVIDER, http_status=reply.status,
                                code="PARTIAL_FAILURE")
