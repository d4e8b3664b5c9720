"""Metadata endpoints of the double: properties and groups, association labels and v4
associations, custom object schemas, owners and pipelines."""

from __future__ import annotations

import re
from typing import Any

from tests.hubspot.double.objects import find, link
from tests.hubspot.double.state import ApiError, Portal, definition, iso

_TYPES = {"bool", "date", "datetime", "enumeration", "number", "phone_number", "string"}
_FIELDS = {"booleancheckbox", "calculation_equation", "checkbox", "date", "file", "html",
           "number", "phonenumber", "radio", "select", "text", "textarea"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def property_create(portal: Portal, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /crm/v3/properties/{type}: 201, 400 on a bad definition, 409 if it exists."""
    name = str(body.get("name") or "")
    if not _NAME.match(name):
        raise ApiError(400, "VALIDATION_ERROR", f"Invalid property name {name!r}")
    if body.get("type") not in _TYPES or body.get("fieldType") not in _FIELDS:
        raise ApiError(400, "VALIDATION_ERROR",
                       f"Invalid type/fieldType {body.get('type')}/{body.get('fieldType')}")
    if body.get("groupName") not in portal.groups[object_type]:
        raise ApiError(400, "VALIDATION_ERROR",
                       f"Property group {body.get('groupName')!r} does not exist")
    if body["type"] in ("enumeration", "bool") and not body.get("options") and \
            not body.get("externalOptions"):
        raise ApiError(400, "VALIDATION_ERROR", f"{name}: enumeration properties need options")
    if name in portal.definitions[object_type]:
        raise ApiError(409, "OBJECT_ALREADY_EXISTS", f"Property named '{name}' already exists.")
    created = definition(name, body["type"], body["fieldType"], group=body["groupName"],
                         unique=bool(body.get("hasUniqueValue")))
    created.update(label=body.get("label", name), description=body.get("description", ""),
                   options=body.get("options") or [], formField=bool(body.get("formField")),
                   externalOptions=bool(body.get("externalOptions")))
    portal.definitions[object_type][name] = created
    return created


def property_update(portal: Portal, object_type: str, name: str,
                    body: dict[str, Any]) -> dict[str, Any]:
    """PATCH /crm/v3/properties/{type}/{name}."""
    found = portal.definitions[object_type].get(name)
    if found is None or found["archived"]:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Property {name} does not exist")
    if "hasUniqueValue" in body and bool(body["hasUniqueValue"]) != found["hasUniqueValue"]:
        raise ApiError(400, "VALIDATION_ERROR", "hasUniqueValue cannot be changed")
    for key in ("label", "description", "fieldType", "groupName", "options", "type"):
        if key in body:
            found[key] = body[key]
    return found


def property_batch_create(portal: Portal, object_type: str,
                          body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST /crm/v3/properties/{type}/batch/create: 201, or 207 with per-input errors."""
    results, errors = [], []
    for item in body.get("inputs") or []:
        try:
            results.append(property_create(portal, object_type, item))
        except ApiError as exc:
            errors.append({"status": "error", "category": exc.body["category"],
                           "message": exc.body["message"],
                           "context": {"name": [item.get("name")]}})
    stamp = iso(portal.clock())
    answer: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": stamp,
                              "completedAt": stamp}
    if errors:
        answer.update(numErrors=len(errors), errors=errors)
        return 207, answer
    return 201, answer


def group_create(portal: Portal, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /crm/v3/properties/{type}/groups."""
    name = str(body.get("name") or "")
    if not _NAME.match(name) or not body.get("label"):
        raise ApiError(400, "VALIDATION_ERROR", "a group needs a valid name and a label")
    if name in portal.groups[object_type]:
        raise ApiError(409, "OBJECT_ALREADY_EXISTS", f"Property group {name} already exists.")
    group = {"name": name, "label": body["label"],
             "displayOrder": int(body.get("displayOrder", -1)), "archived": False}
    portal.groups[object_type][name] = group
    return group


def labels(portal: Portal, from_type: str, to_type: str) -> dict[str, Any]:
    """GET /crm/v4/associations/{from}/{to}/labels."""
    types = portal.assoc_types.get((from_type, to_type), {})
    return {"results": [{"category": t["category"], "typeId": i, "label": t["label"]}
                        for i, t in sorted(types.items())]}


def label_create(portal: Portal, from_type: str, to_type: str,
                 body: dict[str, Any]) -> dict[str, Any]:
    """POST /crm/v4/associations/{from}/{to}/labels: a paired label when inverseLabel is set."""
    if not body.get("label") or not body.get("name"):
        raise ApiError(400, "VALIDATION_ERROR", "label and name are required")
    existing = portal.assoc_types.get((from_type, to_type), {}).values()
    if any(t["label"] == body["label"] for t in existing):
        raise ApiError(409, "CONFLICT", f"label {body['label']} already exists")
    ids = portal.define_pair(from_type, to_type, body["label"], body.get("inverseLabel"))
    return {"results": [{"category": "USER_DEFINED", "typeId": i,
                         "label": portal.assoc_types[(from_type, to_type)].get(
                             i, portal.assoc_types.get((to_type, from_type), {}).get(i, {})
                         ).get("label")} for i in ids]}


def associate(portal: Portal, from_type: str, from_id: str, to_type: str, to_id: str,
              specs: list[dict[str, Any]]) -> dict[str, Any]:
    """PUT /crm/v4/objects/{type}/{id}/associations/{toType}/{toId} (idempotent)."""
    find(portal, from_type, from_id)
    find(portal, to_type, to_id)
    for spec in specs:
        link(portal, from_type, from_id, to_type, to_id, spec["associationCategory"],
             int(spec["associationTypeId"]))
    types = portal.links[(from_type, from_id, to_type)][to_id]
    return {"fromObjectTypeId": portal.type_id(from_type), "fromObjectId": int(from_id),
            "toObjectTypeId": portal.type_id(to_type), "toObjectId": int(to_id),
            "labels": [portal.assoc_types[(from_type, to_type)][t]["label"] or ""
                       for _, t in sorted(types)]}


def associations_page(portal: Portal, from_type: str, from_id: str,
                      to_type: str) -> dict[str, Any]:
    """GET /crm/v4/objects/{type}/{id}/associations/{toType}."""
    linked = portal.links.get((from_type, from_id, to_type), {})
    return {"results": [
        {"toObjectId": int(to_id), "associationTypes": [
            {"category": c, "typeId": t,
             "label": portal.assoc_types[(from_type, to_type)][t]["label"]}
            for c, t in sorted(types)]}
        for to_id, types in sorted(linked.items(), key=lambda kv: int(kv[0]))]}


def schema_create(portal: Portal, body: dict[str, Any]) -> dict[str, Any]:
    """POST /crm-object-schemas/v3/schemas: Enterprise only."""
    if not portal.enterprise:
        raise ApiError(403, "MISSING_SCOPES",
                       "This app hasn't been granted all required scopes to make this call.",
                       context={"requiredScopes": ["crm.schemas.custom.write"]})
    for key in ("name", "labels", "requiredProperties", "properties", "associatedObjects"):
        if key not in body:
            raise ApiError(400, "VALIDATION_ERROR", f"{key} is required")
    if any(s["name"] == body["name"] for s in portal.schemas.values()):
        raise ApiError(409, "OBJECT_ALREADY_EXISTS", f"Object {body['name']} already exists")
    type_id = f"2-{portal.next_id()}"
    group = f"{body['name']}_information"
    portal.definitions[type_id] = {}
    portal.groups[type_id] = {group: {"name": group, "label": "Information",
                                      "displayOrder": 0, "archived": False}}
    portal.records[type_id] = {}
    for prop in body["properties"]:
        property_create(portal, type_id, {**prop, "groupName": group})
    portal.definitions[type_id]["hs_object_id"] = definition("hs_object_id", "number", "number",
                                                             read_only=True)
    for extra in ("createdate", "hs_lastmodifieddate"):
        portal.definitions[type_id][extra] = definition(extra, "datetime", "date",
                                                        read_only=extra != "createdate")
    associations = []
    for target in body["associatedObjects"]:
        to_type = portal.canonical(target)
        forward, backward = portal.define_pair(type_id, to_type, None, None,
                                               category="USER_DEFINED")
        associations.append({"id": str(forward), "fromObjectTypeId": type_id,
                             "toObjectTypeId": portal.type_id(to_type),
                             "name": f"{body['name']}_to_{to_type}"})
        associations.append({"id": str(backward), "fromObjectTypeId": portal.type_id(to_type),
                             "toObjectTypeId": type_id, "name": f"{to_type}_to_{body['name']}"})
    stamp = iso(portal.clock())
    schema = {
        "id": type_id.split("-")[1], "objectTypeId": type_id, "name": body["name"],
        "fullyQualifiedName": f"p{portal.portal_id}_{body['name']}", "labels": body["labels"],
        "primaryDisplayProperty": body.get("primaryDisplayProperty"),
        "requiredProperties": body["requiredProperties"],
        "searchableProperties": body.get("searchableProperties", []),
        "secondaryDisplayProperties": body.get("secondaryDisplayProperties", []),
        "properties": list(portal.definitions[type_id].values()),
        "associations": associations, "createdAt": stamp, "updatedAt": stamp, "archived": False,
    }
    portal.schemas[type_id] = schema
    return schema


def schemas(portal: Portal) -> dict[str, Any]:
    """GET /crm-object-schemas/v3/schemas (properties as they are now)."""
    return {"results": [dict(s, properties=list(portal.definitions[t].values()))
                        for t, s in portal.schemas.items()]}


def owners_page(portal: Portal, args: dict[str, str]) -> dict[str, Any]:
    """GET /crm/v3/owners/."""
    archived = args.get("archived", "false").lower() == "true"
    found = [o for o in portal.owners if o["archived"] == archived and
             (not args.get("email") or o["email"].casefold() == args["email"].casefold())]
    after, limit = int(args.get("after") or 0), int(args.get("limit") or 100)
    answer: dict[str, Any] = {"results": found[after:after + limit]}
    if after + limit < len(found):
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return answer


def owner(portal: Portal, key: str, args: dict[str, str]) -> dict[str, Any]:
    """GET /crm/v3/owners/{ownerId}?idProperty=id|userId&archived=…"""
    field = "userId" if args.get("idProperty") == "userId" else "id"
    archived = args.get("archived", "false").lower() == "true"
    for found in portal.owners:
        if str(found[field]) == key and found["archived"] == archived:
            return found
    raise ApiError(404, "OBJECT_NOT_FOUND", f"Owner {key} not found")
