"""``POST /crm/v3/objects/{type}/search`` of the double, with HubSpot's limits: 200 per page,
5 groups x 6 filters (18 in all), one sort, and no paging past 10,000 results (400)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.hubspot.double.objects import open_deals, render
from tests.hubspot.double.state import ApiError, Portal, Record, millis

CAP = 10_000


def _kind(portal: Portal, object_type: str, name: str) -> str:
    if name == "hs_object_id":
        return "number"
    return str(portal.definitions[object_type].get(name, {}).get("type", "string"))


def _typed(kind: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if kind in ("datetime", "date"):
        return millis(value)
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return None
    return str(value).casefold()


def _getter(portal: Portal, object_type: str, name: str) -> Callable[[Record], Any]:
    """Reads one property of a record, typed for comparison."""
    if name.startswith("associations."):
        to_type = portal.canonical(name.split(".", 1)[1])
        return lambda r: set(portal.links.get((object_type, r.id, to_type), {}))
    if object_type == "companies" and name == "hs_num_open_deals":
        return lambda r: float(open_deals(portal, r.id))
    kind = _kind(portal, object_type, name)
    return lambda r: _typed(kind, r.properties.get(name))


def _compile(portal: Portal, object_type: str, flt: dict[str, Any]) -> Callable[[Record], bool]:
    """One filter as a predicate, its operand typed once."""
    name, operator = flt["propertyName"], flt["operator"]
    get, kind = _getter(portal, object_type, name), _kind(portal, object_type, name)
    want = _typed(kind, flt.get("value"))
    values = {_typed(kind, v) for v in flt.get("values", [])}
    high = _typed(kind, flt.get("highValue"))

    def holds(record: Record) -> bool:
        have = get(record)
        if isinstance(have, set):
            return operator == "EQ" and str(flt.get("value")) in have
        if operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            return bool((have is not None) == (operator == "HAS_PROPERTY"))
        if operator in ("IN", "NOT_IN"):
            return bool((have in values) == (operator == "IN"))
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            tokens = str(have or "").replace(",", " ").split()
            return bool((str(want or "").strip("*") in tokens) == (operator == "CONTAINS_TOKEN"))
        if have is None:
            return bool(operator == "NEQ")
        try:
            return bool({"EQ": have == want, "NEQ": have != want, "LT": have < want,
                         "LTE": have <= want, "GT": have > want, "GTE": have >= want,
                         "BETWEEN": high is not None and want <= have <= high}[operator])
        except TypeError:
            return False

    return holds


def _validate(body: dict[str, Any]) -> tuple[list[list[dict[str, Any]]], int, int]:
    groups = [g.get("filters", []) for g in body.get("filterGroups") or []]
    if len(groups) > 5 or any(len(g) > 6 for g in groups) or sum(map(len, groups)) > 18:
        raise ApiError(400, "VALIDATION_ERROR",
                       "Too many filter groups or filters: at most 5 groups of 6, 18 in total")
    if len(body.get("sorts") or []) > 1:
        raise ApiError(400, "VALIDATION_ERROR", "Only one sort is supported")
    limit = int(body.get("limit") or 10)
    if limit > 200:
        raise ApiError(400, "VALIDATION_ERROR", "limit must be at most 200")
    after = int(body.get("after") or 0)
    if after >= CAP:
        raise ApiError(400, "VALIDATION_ERROR",
                       f"The search API cannot page past {CAP} results (after={after})")
    return groups, limit, after


def _matches(portal: Portal, object_type: str, body: dict[str, Any],
             groups: list[list[dict[str, Any]]]) -> list[Record]:
    """The sorted matches of a query, reused across its pages while nothing was written."""
    key = json.dumps([object_type, groups, body.get("sorts")], sort_keys=True)
    cached = portal.matches.get(key)
    if cached is not None and cached[0] == portal.version:
        return cached[1]
    records = [r for r in portal.records[object_type].values() if not r.archived]
    if groups:
        compiled = [[_compile(portal, object_type, f) for f in g] for g in groups]
        records = [r for r in records if any(all(f(r) for f in g) for g in compiled)]
    sorts = body.get("sorts") or []
    records.sort(key=lambda r: int(r.id))
    if sorts:
        sort = sorts[0] if isinstance(sorts[0], dict) else {"propertyName": sorts[0]}
        get = _getter(portal, object_type, sort["propertyName"])
        keys = {r.id: get(r) for r in records}
        records.sort(key=lambda r: (keys[r.id] is None, keys[r.id] or 0),
                     reverse=sort.get("direction", "ASCENDING") == "DESCENDING")
    portal.matches.clear()
    portal.matches[key] = (portal.version, records)
    return records


def search(portal: Portal, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
    """Evaluate a search request."""
    groups, limit, after = _validate(body)
    records = _matches(portal, object_type, body, groups)
    page = records[after:after + limit]
    answer: dict[str, Any] = {
        "total": len(records),
        "results": [render(portal, object_type, r, body.get("properties")) for r in page],
    }
    if after + limit < len(records):
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return answer
