"""CRM v3 object endpoints of the double: create/read/update with HubSpot's validation,
unique values (409 naming the existing id), inline associations, and the batch endpoints
(201/200, or 207 with per-input errors)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.hubspot.double.state import SINGULAR, ApiError, Portal, Record, iso, millis, validation

_DEFAULTS = {
    "contacts": ["createdate", "email", "firstname", "lastname"],
    "companies": ["createdate", "domain", "name"],
    "deals": ["amount", "closedate", "createdate", "dealname", "dealstage", "pipeline"],
    "tasks": ["hs_task_subject", "hs_timestamp"],
}


def _coerce_one(portal: Portal, object_type: str, name: str, value: object) -> str:
    spec = portal.definitions[object_type].get(name)
    if spec is None:
        raise validation(f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST", name)
    if spec["modificationMetadata"]["readOnlyValue"]:
        raise validation(f"{name} is a read only property; its value cannot be set.",
                         "READ_ONLY_VALUE", name)
    text = "" if value is None else str(value)
    if text == "":
        return ""
    kind = spec["type"]
    if kind == "number":
        try:
            float(text)
        except ValueError:
            raise validation(f"{text!r} is not a valid number for {name}", "INVALID_DECIMAL",
                             name) from None
    elif kind in ("datetime", "date"):
        ms = millis(text)
        if ms is None:
            raise validation(f"{text!r} is not a valid date for {name}", "INVALID_DATE", name)
        text = iso(datetime.fromtimestamp(ms / 1000, tz=UTC))
    elif kind == "bool" and text.lower() not in ("true", "false"):
        raise validation(f"{text!r} is not a boolean for {name}", "INVALID_BOOLEAN", name)
    elif name == "hubspot_owner_id":
        owners = {o["id"] for o in portal.owners if not o["archived"]}
        if text not in owners:
            raise validation(f"{text!r} is not a valid owner id", "INVALID_OWNER_ID", name)
    elif kind == "enumeration" and spec["options"] and not spec["externalOptions"]:
        allowed = {o["value"] for o in spec["options"]}
        bad = [v for v in text.split(";") if v not in allowed]
        if bad:
            raise validation(f"{bad[0]!r} was not one of the allowed options for {name}",
                             "INVALID_OPTION", name)
    return text


def coerce(portal: Portal, object_type: str, props: dict[str, Any]) -> dict[str, str]:
    """Validate and normalise written property values."""
    if not isinstance(props, dict):
        raise ApiError(400, "VALIDATION_ERROR", "properties must be an object")
    out = {n: _coerce_one(portal, object_type, n, v) for n, v in props.items()}
    if object_type == "deals":
        stage, pipeline = out.get("dealstage"), out.get("pipeline")
        found = portal.stage(stage) if stage else None
        if stage and (found is None or (pipeline and found["pipelineId"] != pipeline)):
            raise validation(f"{stage!r} is not a valid deal stage", "INVALID_OPTION", "dealstage")
    return out


def _unique_names(portal: Portal, object_type: str) -> list[str]:
    names = [n for n, d in portal.definitions[object_type].items() if d["hasUniqueValue"]]
    return (["email"] if object_type == "contacts" else []) + names


def _check_unique(portal: Portal, object_type: str, props: dict[str, str],
                  own_id: str | None) -> None:
    for name in _unique_names(portal, object_type):
        value = props.get(name)
        if not value:
            continue
        for other in portal.records[object_type].values():
            if other.id != own_id and not other.archived and \
                    other.properties.get(name, "").casefold() == value.casefold():
                if object_type == "contacts" and name == "email":
                    message = f"Contact already exists. Existing ID: {other.id}"
                else:
                    message = (f"A {SINGULAR.get(object_type, 'record')} with the unique value "
                               f"for {name} already exists. Existing ID: {other.id}")
                raise ApiError(409, "CONFLICT", message)


def _computed(portal: Portal, object_type: str, record: Record) -> None:
    props = record.properties
    props["hs_object_id"] = record.id
    props.setdefault("createdate", iso(record.created))
    props[portal.modified_prop(object_type)] = iso(record.updated)
    if object_type == "contacts" and props.get("email"):
        props["hs_email_domain"] = props["email"].rsplit("@", 1)[-1].lower()
    if object_type == "deals":
        stage = portal.stage(props.get("dealstage", "")) or {"metadata": {}}
        closed = stage["metadata"].get("isClosed") == "true"
        props["hs_is_closed"] = "true" if closed else "false"
        props["hs_is_closed_won"] = "true" if closed and \
            stage["metadata"].get("probability") == "1.0" else "false"


def open_deals(portal: Portal, company_id: str) -> int:
    """How many open deals a company is associated with (HubSpot computes this)."""
    linked = portal.links.get(("companies", company_id, "deals"), {})
    deals = [portal.records["deals"].get(i) for i in linked]
    return sum(1 for d in deals if d and d.properties.get("hs_is_closed") != "true")


def render(portal: Portal, object_type: str, record: Record,
           properties: list[str] | None = None) -> dict[str, Any]:
    """An object as the API returns it."""
    props = dict(record.properties)
    if object_type == "companies":
        props["hs_num_open_deals"] = str(open_deals(portal, record.id))
    if properties is None:
        shown = {n: props.get(n) for n in _DEFAULTS.get(object_type, [])}
    else:
        known = portal.definitions[object_type]
        shown = {n: props.get(n) for n in properties if n in known}
    for always in ("hs_object_id", "createdate", portal.modified_prop(object_type)):
        shown[always] = props.get(always)
    return {"id": record.id, "properties": shown, "createdAt": iso(record.created),
            "updatedAt": iso(record.updated), "archived": record.archived}


def find(portal: Portal, object_type: str, key: str, id_property: str | None = None) -> Record:
    """A live record by id or by a unique property; 404 otherwise."""
    records = portal.records[object_type]
    if not id_property or id_property == "hs_object_id":
        record = records.get(key)
    else:
        if id_property not in _unique_names(portal, object_type):
            raise ApiError(400, "VALIDATION_ERROR",
                           f"{id_property} is not a unique identifier property")
        record = next((r for r in records.values()
                       if r.properties.get(id_property, "").casefold() == key.casefold()), None)
    if record is None or record.archived:
        raise ApiError(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")
    return record


def link(portal: Portal, from_type: str, from_id: str, to_type: str, to_id: str,
         category: str, type_id: int) -> None:
    """Associate two records both ways (HubSpot keeps the inverse type on the other side)."""
    spec = portal.assoc_types.get((from_type, to_type), {}).get(int(type_id))
    if spec is None or spec["category"] != category:
        raise ApiError(400, "VALIDATION_ERROR",
                       f"{category} association type {type_id} is not valid from {from_type} "
                       f"to {to_type}")
    if to_id not in portal.records.get(to_type, {}) or from_id not in portal.records[from_type]:
        raise ApiError(400, "VALIDATION_ERROR", f"No {to_type} with id {to_id} exists")
    portal.version += 1
    forward = portal.links.setdefault((from_type, from_id, to_type), {})
    forward.setdefault(to_id, set()).add((category, int(type_id)))
    backward = portal.links.setdefault((to_type, to_id, from_type), {})
    backward.setdefault(from_id, set()).add((category, spec["inverse"]))
    if (from_type, to_type, int(type_id)) == ("contacts", "companies", 1):
        portal.records["contacts"][from_id].properties["associatedcompanyid"] = to_id


def _inline(portal: Portal, object_type: str, associations: Any) -> list[tuple[str, str, int]]:
    """Inline associations checked before anything is written: (to id, category, type)."""
    out = []
    for item in associations or []:
        to_id = str(item["to"]["id"])
        for spec in item.get("types", []):
            out.append((to_id, spec["associationCategory"], int(spec["associationTypeId"])))
    return out


def _target_type(portal: Portal, object_type: str, type_id: int) -> str:
    for (from_type, to_type), types in portal.assoc_types.items():
        if from_type == object_type and type_id in types:
            return to_type
    raise ApiError(400, "VALIDATION_ERROR", f"association type {type_id} is not valid from "
                                            f"{object_type}")


def create(portal: Portal, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /crm/v3/objects/{type}."""
    props = coerce(portal, object_type, body.get("properties") or {})
    if object_type == "tasks" and not props.get("hs_timestamp"):
        raise validation("hs_timestamp is required", "REQUIRED_PROPERTY", "hs_timestamp")
    _check_unique(portal, object_type, props, None)
    links = _inline(portal, object_type, body.get("associations"))
    for to_id, _, type_id in links:
        if to_id not in portal.records.get(_target_type(portal, object_type, type_id), {}):
            raise ApiError(400, "VALIDATION_ERROR", f"No object with id {to_id} to associate")
    now = portal.clock()
    record = Record(portal.next_id(), {k: v for k, v in props.items() if v != ""}, now, now)
    _computed(portal, object_type, record)
    portal.records[object_type][record.id] = record
    portal.version += 1
    for to_id, category, type_id in links:
        link(portal, object_type, record.id, _target_type(portal, object_type, type_id), to_id,
             category, type_id)
    return render(portal, object_type, record, sorted(record.properties))


def update(portal: Portal, object_type: str, key: str, body: dict[str, Any],
           id_property: str | None = None) -> dict[str, Any]:
    """PATCH /crm/v3/objects/{type}/{id}."""
    record = find(portal, object_type, key, id_property)
    props = coerce(portal, object_type, body.get("properties") or {})
    _check_unique(portal, object_type, {**record.properties, **props}, record.id)
    for name, value in props.items():
        if value == "":
            record.properties.pop(name, None)
        else:
            record.properties[name] = value
    record.updated = portal.clock()
    portal.version += 1
    _computed(portal, object_type, record)
    return render(portal, object_type, record, sorted(record.properties))


def associations_of(portal: Portal, object_type: str, record_id: str,
                    to_types: list[str]) -> dict[str, Any]:
    """The v3 ``associations`` block of a GET."""
    out = {}
    for wanted in to_types:
        to_type = portal.canonical(wanted)
        linked = portal.links.get((object_type, record_id, to_type), {})
        if linked:
            name = f"{SINGULAR.get(object_type, object_type)}_to_" \
                   f"{SINGULAR.get(to_type, to_type)}"
            out[wanted] = {"results": [{"id": i, "type": name} for i in sorted(linked, key=int)]}
    return out


def batch(portal: Portal, object_type: str, action: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST /crm/v3/objects/{type}/batch/{create|read|update|upsert}."""
    inputs = body.get("inputs") or []
    if len(inputs) > 100:
        raise ApiError(400, "VALIDATION_ERROR", "Batch input limit is 100")
    results, errors = [], []
    for item in inputs:
        # HubSpot echoes an input's write trace id on its result, or on its error (207).
        trace = item.get("objectWriteTraceId")
        try:
            result = _batch_one(portal, object_type, action, item, body)
            results.append({**result, "objectWriteTraceId": trace} if trace else result)
        except ApiError as exc:
            context = {"ids": [str(item.get("id", ""))]} if "id" in item else {}
            if trace:
                context["objectWriteTraceId"] = [str(trace)]
            errors.append({"status": "error", "category": exc.body["category"],
                           "message": exc.body["message"], "context": context, "errors": []})
    stamp = iso(portal.clock())
    answer: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": stamp,
                              "completedAt": stamp}
    if errors:
        answer.update(numErrors=len(errors), errors=errors)
        return 207, answer
    return (201 if action == "create" else 200), answer


def _batch_one(portal: Portal, object_type: str, action: str, item: dict[str, Any],
               body: dict[str, Any]) -> dict[str, Any]:
    if action == "create":
        return create(portal, object_type, item)
    if action == "update":
        return update(portal, object_type, str(item["id"]), item, item.get("idProperty"))
    if action == "read":
        record = find(portal, object_type, str(item["id"]), body.get("idProperty"))
        return render(portal, object_type, record, body.get("properties"))
    id_property = item.get("idProperty")
    try:
        found = find(portal, object_type, str(item["id"]), id_property)
    except ApiError as exc:
        if exc.status != 404:
            raise
        props = {**(item.get("properties") or {}), (id_property or "hs_object_id"): item["id"]}
        return {**create(portal, object_type, {"properties": props}), "new": True}
    return {**update(portal, object_type, found.id, item), "new": False}
