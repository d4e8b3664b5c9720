"""Install the schema through the Metadata API, idempotently.

Read what exists (``readMetadata``, 10 components per call), compare it with the
definitions in ``schema.py`` on the keys we define, and upsert only what is missing or
different. A second run therefore sends reads only and reports nothing to change; the same
comparison is the drift report of ``doctor``. Order matters: the reward object before its
fields, fields before the permission set that grants them, the Lead conversion mapping last.

``LeadConvertSettings`` is one org-wide component holding every mapping, so ours are
merged into what the org has rather than replacing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zeep.helpers import serialize_object

from referral_sync.crm import SchemaChange
from referral_sync.salesforce import schema as s
from referral_sync.salesforce.client import SalesforceClient

CHUNK = 10


@dataclass(frozen=True)
class Component:
    """One metadata component we want to exist with (at least) ``data``."""

    type: str
    full_name: str
    data: dict[str, Any]
    object_name: str
    item: str


def desired() -> list[Component]:
    """Everything ``install`` manages, in install order."""
    items = [Component("CustomObject", s.REWARD_OBJECT, s.reward_object(), s.REWARD_OBJECT,
                       "(object)")]
    items += [Component("CustomField", f"{obj}.{spec.name}", spec.metadata(obj), obj, spec.name)
              for obj, spec in s.custom_fields()]
    items.append(Component("PermissionSet", s.PERMISSION_SET, s.permission_set(),
                           "PermissionSet", s.PERMISSION_SET))
    items.append(Component("LeadConvertSettings", "LeadConvertSettings",
                           s.lead_convert_settings(), "Lead", "conversion field mapping"))
    return items


def _same(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool):
        return str(actual).lower() == str(wanted).lower()
    if isinstance(wanted, int | float):
        try:
            return float(actual) == float(wanted)
        except (TypeError, ValueError):
            return False
    return str(actual if actual is not None else "") == str(wanted)


def differences(actual: Any, wanted: Any, path: str = "") -> list[str]:
    """Where ``actual`` (as read) falls short of ``wanted`` (our definition)."""
    if isinstance(wanted, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{path or '(all)'} missing"]
        out: list[str] = []
        for key, value in wanted.items():
            out += differences(actual.get(key), value, f"{path}.{key}".lstrip("."))
        return out
    if isinstance(wanted, list):
        items = list(actual or [])
        if len(items) != len(wanted):
            return [f"{path}: {len(items)} item(s), expected {len(wanted)}"]
        return [d for i, (a, w) in enumerate(zip(items, wanted, strict=True))
                for d in differences(a, w, f"{path}[{i}]")]
    return [] if _same(actual, wanted) else [f"{path}: {actual!r} != {wanted!r}"]


def _merge_mappings(actual: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The org's LeadConvertSettings plus our field mappings (theirs are kept)."""
    merged = {k: v for k, v in actual.items() if v not in (None, [])}
    merged["fullName"] = wanted["fullName"]
    for key in ("allowOwnerChange", "opportunityCreationOptions"):
        merged.setdefault(key, wanted[key])
    mappings = {(m["inputObject"], m["outputObject"]): dict(m)
                for m in actual.get("objectMapping") or []}
    for ours in wanted["objectMapping"]:
        target = mappings.setdefault((ours["inputObject"], ours["outputObject"]),
                                     {**ours, "mappingFields": []})
        have = {f["inputField"]: f for f in target.get("mappingFields") or []}
        for field_map in ours["mappingFields"]:
            have[field_map["inputField"]] = field_map
        target["mappingFields"] = list(have.values())
    merged["objectMapping"] = list(mappings.values())
    return merged


def _missing_mappings(actual: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    have = {(m.get("inputObject"), m.get("outputObject"), f.get("inputField"),
             f.get("outputField"))
            for m in actual.get("objectMapping") or [] for f in m.get("mappingFields") or []}
    return [f"{m['outputObject']}.{f['outputField']} not mapped"
            for m in wanted["objectMapping"] for f in m["mappingFields"]
            if (m["inputObject"], m["outputObject"], f["inputField"], f["outputField"])
            not in have]


def _chunks(items: list[Component]) -> Iterable[list[Component]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _read(client: SalesforceClient, kind: str, names: list[str]) -> list[dict[str, Any]]:
    mdtype = getattr(client.metadata(), kind)
    result = client.call(lambda _sf: mdtype.read(names))
    rows = result if isinstance(result, list) else [result]
    return [_as_dict(serialize_object(row, dict))  # type: ignore[no-untyped-call]
            for row in rows]


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def plan(client: SalesforceClient) -> list[tuple[Component, SchemaChange, dict[str, Any]]]:
    """What to write: ``(component, change, data to upsert)`` for each component off target."""
    out: list[tuple[Component, SchemaChange, dict[str, Any]]] = []
    wanted = desired()
    for kind in dict.fromkeys(c.type for c in wanted):
        for chunk in _chunks([c for c in wanted if c.type == kind]):
            for comp, actual in zip(chunk, _read(client, kind, [c.full_name for c in chunk]),
                                    strict=True):
                change = _compare(comp, actual)
                if change is not None:
                    out.append(change)
    return out


def _compare(comp: Component, actual: dict[str, Any]
             ) -> tuple[Component, SchemaChange, dict[str, Any]] | None:
    exists = bool(actual.get("fullName"))
    if comp.type == "LeadConvertSettings":
        diffs = _missing_mappings(actual if exists else {}, comp.data)
        data = _merge_mappings(actual if exists else {}, comp.data)
    else:
        diffs = differences(actual, comp.data) if exists else []
        data = comp.data
    if exists and not diffs:
        return None
    action = "update" if exists else "create"
    detail = "; ".join(diffs[:5]) + (f" (+{len(diffs) - 5} more)" if len(diffs) > 5 else "")
    change = SchemaChange(object_name=comp.object_name, item=comp.item, action=action,
                          detail=detail or f"{comp.type} {comp.full_name}")
    return comp, change, data


def ensure_schema(client: SalesforceClient, *, dry_run: bool) -> list[SchemaChange]:
    """Bring the org in line with ``schema.py``; returns the changes (made or, with
    ``dry_run``, planned). Upserts go 10 per call, one metadata type per call."""
    todo = plan(client)
    if dry_run or not todo:
        return [change for _, change, _ in todo]
    mdapi = client.metadata()
    for kind in dict.fromkeys(comp.type for comp, _, _ in todo):
        batch = [data for comp, _, data in todo if comp.type == kind]
        mdtype = getattr(mdapi, kind)
        for start in range(0, len(batch), CHUNK):
            _upsert(client, mdtype, [mdtype(**data) for data in batch[start:start + CHUNK]])
    return [change for _, change, _ in todo]


def _upsert(client: SalesforceClient, mdtype: Any, components: list[Any]) -> None:
    client.call(lambda _sf: mdtype.upsert(components))
