"""The in-memory portal behind the HubSpot double: records, property definitions, groups,
associations (with HubSpot's paired type ids), labels, custom object schemas, owners and
deal pipelines, plus HubSpot's error bodies."""

from __future__ import annotations

import functools
import itertools
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

STANDARD_TYPES = {"0-1": "contacts", "0-2": "companies", "0-3": "deals", "0-27": "tasks"}
TYPE_IDS = {v: k for k, v in STANDARD_TYPES.items()}
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal", "tasks": "task"}
MODIFIED = {"contacts": "lastmodifieddate"}

#: HUBSPOT_DEFINED association type ids and their inverses (associations overview).
DEFINED: dict[tuple[str, str], dict[int, int]] = {
    ("contacts", "companies"): {279: 280, 1: 2},
    ("companies", "contacts"): {280: 279, 2: 1},
    ("deals", "contacts"): {3: 4},
    ("contacts", "deals"): {4: 3},
    ("deals", "companies"): {341: 342, 5: 6},
    ("companies", "deals"): {342: 341, 6: 5},
    ("contacts", "contacts"): {449: 449},
    ("tasks", "contacts"): {204: 203},
    ("contacts", "tasks"): {203: 204},
    ("tasks", "companies"): {192: 191},
    ("tasks", "deals"): {216: 215},
}


class ApiError(Exception):
    """An error answer in HubSpot's format."""

    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {
            "status": "error", "message": message, "correlationId": str(uuid.uuid4()),
            "category": category, **extra}
        self.headers: dict[str, str] = {}


def validation(message: str, code: str, name: str) -> ApiError:
    """A 400 VALIDATION_ERROR naming one property, as HubSpot words them."""
    return ApiError(400, "VALIDATION_ERROR", f"Property values were not valid: {message}",
                    errors=[{"message": message, "code": code,
                             "context": {"propertyName": [name]}}])


def iso(moment: datetime) -> str:
    """HubSpot's timestamp format."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{moment.microsecond // 1000:03d}Z"


def millis(value: Any) -> int | None:
    """Epoch ms of an ms string or ISO timestamp."""
    if value in (None, ""):
        return None
    return _millis(str(value))


@functools.lru_cache(maxsize=200_000)
def _millis(text: str) -> int | None:
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def definition(name: str, type_: str = "string", field_type: str = "text", *,
               read_only: bool = False, options: list[str] | None = None,
               unique: bool = False, group: str = "standard") -> dict[str, Any]:
    """A property definition as the properties API returns it."""
    return {
        "name": name, "label": name, "type": type_, "fieldType": field_type,
        "groupName": group, "description": "", "displayOrder": -1, "hidden": False,
        "formField": False, "calculated": read_only, "externalOptions": False,
        "hasUniqueValue": unique, "archived": False, "createdAt": "2020-01-01T00:00:00.000Z",
        "updatedAt": "2020-01-01T00:00:00.000Z",
        "options": [{"label": o, "value": o, "displayOrder": i, "hidden": False}
                    for i, o in enumerate(options or [])],
        "modificationMetadata": {"archivable": not read_only, "readOnlyDefinition": True,
                                 "readOnlyValue": read_only},
    }


def _standard() -> dict[str, dict[str, dict[str, Any]]]:
    stages = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
              "opportunity", "customer", "evangelist", "other"]
    common = [definition("hubspot_owner_id", "enumeration", "select"),
              definition("createdate", "datetime", "date"),
              definition("hs_object_id", "number", "number", read_only=True)]
    specs = {
        "contacts": [definition("email"), definition("firstname"), definition("lastname"),
                     definition("company"), definition("phone"), definition("jobtitle"),
                     definition("country"), definition("industry"),
                     definition("lifecyclestage", "enumeration", "radio", options=stages),
                     definition("associatedcompanyid", "number", "number", read_only=True),
                     definition("hs_email_domain", read_only=True),
                     definition("lastmodifieddate", "datetime", "date", read_only=True),
                     definition("hs_analytics_source", "enumeration", "select",
                                read_only=True, options=["ORGANIC_SEARCH", "OFFLINE"]),
                     definition("notes_last_contacted", "datetime", "date", read_only=True),
                     definition("hs_last_sales_activity_timestamp", "datetime", "date",
                                read_only=True)],
        "companies": [definition("name"), definition("domain"), definition("industry"),
                      definition("lifecyclestage", "enumeration", "radio", options=stages),
                      definition("hs_lifecyclestage_customer_date", "datetime", "date"),
                      definition("hs_num_open_deals", "number", "number", read_only=True),
                      definition("hs_lastmodifieddate", "datetime", "date", read_only=True),
                      definition("active_seats", "number", "number")],
        "deals": [definition("dealname"), definition("dealstage", "enumeration", "radio"),
                  definition("pipeline", "enumeration", "select"),
                  definition("amount", "number", "number"),
                  definition("closedate", "datetime", "date"),
                  definition("hs_is_closed_won", "bool", "booleancheckbox", read_only=True),
                  definition("hs_is_closed", "bool", "booleancheckbox", read_only=True),
                  definition("hs_lastmodifieddate", "datetime", "date", read_only=True)],
        "tasks": [definition("hs_task_subject"), definition("hs_task_body", "string", "html"),
                  definition("hs_task_status", "enumeration", "select",
                             options=["NOT_STARTED", "COMPLETED", "IN_PROGRESS", "WAITING"]),
                  definition("hs_task_type", "enumeration", "select",
                             options=["CALL", "EMAIL", "TODO"]),
                  definition("hs_timestamp", "datetime", "date"),
                  definition("hs_lastmodifieddate", "datetime", "date", read_only=True)],
    }
    return {t: {d["name"]: d for d in [*common, *defs]} for t, defs in specs.items()}


def _pipelines() -> list[dict[str, Any]]:
    def stage(sid: str, label: str, order: int, probability: str, closed: bool) -> dict[str, Any]:
        return {"id": sid, "label": label, "displayOrder": order, "archived": False,
                "metadata": {"isClosed": "true" if closed else "false",
                             "probability": probability},
                "createdAt": "2020-01-01T00:00:00.000Z", "updatedAt": "2020-01-01T00:00:00.000Z",
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}

    def pipeline(pid: str, label: str, order: int, stages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": pid, "label": label, "displayOrder": order, "archived": False,
                "stages": stages, "createdAt": "2020-01-01T00:00:00.000Z",
                "updatedAt": "2020-01-01T00:00:00.000Z"}

    return [
        pipeline("default", "Sales Pipeline", 0, [
            stage("appointmentscheduled", "Appointment Scheduled", 0, "0.2", False),
            stage("qualifiedtobuy", "Qualified To Buy", 1, "0.4", False),
            stage("contractsent", "Contract Sent", 2, "0.9", False),
            stage("closedwon", "Closed Won", 3, "1.0", True),
            stage("closedlost", "Closed Lost", 4, "0.0", True)]),
        # Portal-specific ids: nothing may recognise a won stage by its name or id.
        pipeline("7654321", "Partner deals", 1, [
            stage("1f4f1ec1-0b2a-4c8e-9d3f-6a7b8c9d0e1f", "Intro", 0, "0.1", False),
            stage("88888801", "Signed", 1, "1.0", True),
            stage("88888802", "Lost to competitor", 2, "0.0", True),
            stage("88888803", "Won (paperwork)", 3, "0.9", False)]),
    ]


@dataclass
class Record:
    """One CRM object."""

    id: str
    properties: dict[str, str]
    created: datetime
    updated: datetime
    archived: bool = False


@dataclass
class Portal:
    """Everything one HubSpot account holds."""

    portal_id: int = 62515
    enterprise: bool = True
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    lock: threading.RLock = field(default_factory=threading.RLock)
    records: dict[str, dict[str, Record]] = field(default_factory=dict)
    definitions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=_standard)
    groups: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    links: dict[tuple[str, str, str], dict[str, set[tuple[str, int]]]] = field(
        default_factory=dict)
    #: (from type, to type) → type id → {"inverse", "category", "label"}
    assoc_types: dict[tuple[str, str], dict[int, dict[str, Any]]] = field(
        default_factory=lambda: {
            pair: {t: {"inverse": inv, "category": "HUBSPOT_DEFINED", "label": None}
                   for t, inv in types.items()} for pair, types in DEFINED.items()})
    type_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    owners: list[dict[str, Any]] = field(default_factory=list)
    pipelines: list[dict[str, Any]] = field(default_factory=_pipelines)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    #: bumped by every write, so search can reuse one query's matches while paging
    version: int = 0
    matches: dict[str, tuple[int, list[Record]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for object_type in self.definitions:
            self.records.setdefault(object_type, {})
            self.groups[object_type] = {"standard": {
                "name": "standard", "label": "Standard", "displayOrder": 0, "archived": False}}

    def define_pair(self, from_type: str, to_type: str, label: str | None,
                    inverse_label: str | None, category: str = "USER_DEFINED") -> list[int]:
        """Create an association type (and its inverse); returns the new type ids."""
        forward = next(self.type_ids)
        backward = next(self.type_ids) if (from_type, to_type) != (to_type, from_type) or \
            inverse_label else forward
        self.assoc_types.setdefault((from_type, to_type), {})[forward] = {
            "inverse": backward, "category": category, "label": label}
        self.assoc_types.setdefault((to_type, from_type), {})[backward] = {
            "inverse": forward, "category": category,
            "label": inverse_label if backward != forward else label}
        return [forward] if backward == forward else [forward, backward]

    def next_id(self) -> str:
        """A fresh numeric id."""
        return str(next(self.ids))

    def canonical(self, object_type: str) -> str:
        """``contacts``/``0-1``/``contact`` → ``contacts``; custom objects → ``2-…``."""
        name = object_type.lower()
        if name in self.definitions and not name.startswith("2-"):
            return name
        if name in STANDARD_TYPES:
            return STANDARD_TYPES[name]
        plural = {v: k for k, v in SINGULAR.items()}.get(name)
        if plural:
            return plural
        for type_id, schema in self.schemas.items():
            if name in (type_id, schema["name"], schema["fullyQualifiedName"].lower()):
                return type_id
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to infer object type from: {object_type}")

    def type_id(self, object_type: str) -> str:
        """``contacts`` → ``0-1``; custom types are their own id."""
        return TYPE_IDS.get(object_type, object_type)

    def modified_prop(self, object_type: str) -> str:
        """The last-modified property of a type."""
        return MODIFIED.get(object_type, "hs_lastmodifieddate")

    def stage(self, stage_id: str) -> dict[str, Any] | None:
        """A deal stage by id."""
        for pipeline in self.pipelines:
            for stage in pipeline["stages"]:
                if stage["id"] == stage_id:
                    return dict(stage, pipelineId=pipeline["id"])
        return None

    def seed(self, object_type: str, created: datetime | None = None,
             **props: str) -> Record:
        """Store a record as if a user had made it in the UI (no API validation)."""
        when = created or self.clock()
        record = Record(self.next_id(), {k: v for k, v in props.items() if v != ""}, when, when)
        record.properties["hs_object_id"] = record.id
        record.properties.setdefault("createdate", iso(when))
        record.properties[self.modified_prop(object_type)] = iso(when)
        if object_type == "contacts" and "email" in props:
            record.properties["hs_email_domain"] = props["email"].rsplit("@", 1)[-1]
        self.records[object_type][record.id] = record
        self.version += 1
        return record

    def add_owner(self, owner_id: str, email: str, first: str, last: str, *, user_id: str = "",
                  kind: str = "PERSON", archived: bool = False) -> dict[str, Any]:
        """Seed an owner (``/crm/v3/owners``)."""
        owner: dict[str, Any] = {
            "id": owner_id, "email": email, "firstName": first, "lastName": last,
            "userId": int(user_id) if user_id else None, "type": kind, "archived": archived,
            "teams": [], "createdAt": iso(self.clock()), "updatedAt": iso(self.clock())}
        self.owners.append(owner)
        return owner
