"""REST resources of the Salesforce double: routing, sObject writes, Collections, queries
(with child-relationship subqueries and semi-joins) and Composite (with its limits)."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from tests.salesforce import soql
from tests.salesforce.fake_org import NOT_FOUND, PREFIX, VERSION, error, query_text, sort_key

if TYPE_CHECKING:
    from tests.salesforce.fake_org import FakeOrg

REQUIRED = {"Lead": ("LastName", "Company"), "Task": ("OwnerId",)}


def dispatch(org: FakeOrg, method: str, path: str, body: Any,
             headers: Mapping[str, str]) -> tuple[int, Any]:
    """Route one REST call (direct or a Composite subrequest)."""
    route = urlsplit(path)
    parts = [unquote(p) for p in route.path.strip("/").split("/")]
    if parts[0] in ("query", "queryAll") and len(parts) == 1:
        return run_query(org, query_text(path))
    if parts[0] in ("query", "queryAll"):
        return more(org, parts[1])
    if parts[:2] == ["composite", "sobjects"] and method == "PATCH":
        return 200, [_update_one(org, record, headers) for record in body["records"]]
    if parts[0] != "sobjects" or len(parts) < 2 or parts[1] not in PREFIX:
        return 404, NOT_FOUND
    sobject = parts[1]
    fields = [f for f in (route.query.partition("fields=")[2].split(",")) if f]
    if len(parts) == 2 and method == "POST":
        return create(org, sobject, body, headers)
    if len(parts) == 3 and method == "PATCH":
        record = org.db[sobject].get(parts[2])
        if record is None:
            return 404, NOT_FOUND
        status, answer = write(org, sobject, record, body, headers)
        return (204, None) if status < 300 else (status, answer)
    if len(parts) == 3 and method == "GET":
        record = org.db[sobject].get(parts[2])
        return (200, org.shape(sobject, record, fields or list(record))) if record else (
            404, NOT_FOUND)
    if len(parts) == 4:
        return _by_external_id(org, method, sobject, parts[2], parts[3], body, headers, fields)
    return 404, NOT_FOUND


def _by_external_id(org: FakeOrg, method: str, sobject: str, field: str, key: str,
                    body: Any, headers: Mapping[str, str], fields: list[str]) -> tuple[int, Any]:
    element = org.custom_field(sobject, field)
    if element is None or element.findtext(
            "{http://soap.sforce.com/2006/04/metadata}externalId") != "true":
        return 400, error("NOT_FOUND", f"Provided external ID field does not exist or is not "
                          f"accessible: {field}")
    matches = [r for r in org.db[sobject].values() if r.get(field) == key]
    if len(matches) > 1:
        return 300, [f"/services/data/v62.0/sobjects/{sobject}/{r['Id']}" for r in matches]
    if method == "GET":
        return (200, org.shape(sobject, matches[0], fields or list(matches[0]))) if matches \
            else (404, NOT_FOUND)
    if method != "PATCH":
        return 405, error("METHOD_NOT_ALLOWED", method)
    if matches:
        status, answer = write(org, sobject, matches[0], body, headers)
        return (204, None) if status < 300 else (status, answer)
    status, answer = create(org, sobject, {**body, field: key}, headers)
    if status == 201:
        answer["created"] = True
    return status, answer


def create(org: FakeOrg, sobject: str, body: Mapping[str, Any],
           headers: Mapping[str, str]) -> tuple[int, Any]:
    """``POST sobjects/X``."""
    missing = [f for f in REQUIRED.get(sobject, ()) if not body.get(f)]
    if missing:
        return 400, error("REQUIRED_FIELD_MISSING",
                          f"Required fields are missing: [{', '.join(missing)}]", missing)
    record: dict[str, Any] = {"Id": org.new_id(sobject), **org.defaults(sobject)}
    stamp = org.stamp()
    record["CreatedDate"] = stamp
    status, answer = write(org, sobject, record, body, headers, new=True)
    if status >= 300:
        return status, answer
    org.before_insert(sobject, record)
    org.db[sobject][record["Id"]] = record
    return 201, {"id": record["Id"], "success": True, "errors": []}


def write(org: FakeOrg, sobject: str, record: dict[str, Any], body: Mapping[str, Any],
          headers: Mapping[str, str], *, new: bool = False) -> tuple[int, Any]:
    """Validate and apply field values like Salesforce does."""
    if sobject == "Lead" and record.get("IsConverted"):
        return 400, error("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
    values: dict[str, Any] = {}
    for name, value in body.items():
        if name == "attributes":
            continue
        if name.endswith("__r") and isinstance(value, Mapping):
            (ext_field, ext_value), = value.items()
            target = _reference_target(org, sobject, name[:-3] + "__c")
            found = [r for r in org.db.get(target, {}).values() if r.get(ext_field) == ext_value]
            if not found:
                return 400, error("INVALID_FIELD", f"Foreign key external ID: {ext_value} not "
                                  f"found for field {ext_field} in entity {target}")
            name, value = name[:-3] + "__c", found[0]["Id"]
        if not org.knows(sobject, name) or name in ("Id", "CreatedDate", "SystemModstamp"):
            return 400, error("INVALID_FIELD",
                              f"No such column '{name}' on sobject of type {sobject}", [name])
        problem = org.check_value(sobject, name, value)
        if problem:
            return 400, problem
        values[name] = value
    for name, value in values.items():
        element = org.custom_field(sobject, name)
        unique = element is not None and element.findtext(
            "{http://soap.sforce.com/2006/04/metadata}unique") == "true"
        if unique and value and any(r.get(name) == value and r["Id"] != record["Id"]
                                    for r in org.db[sobject].values()):
            return 400, error("DUPLICATE_VALUE", f"duplicate value found: {name}", [name])
    record.update(values)
    if sobject == "Lead":
        assign = headers.get("Sforce-Auto-Assign", "TRUE")
        org.auto_assign.append(assign)
        if assign != "FALSE" and org.assignment_rule_owner:
            record["OwnerId"] = org.assignment_rule_owner
    stamp = org.stamp()
    record["SystemModstamp"] = record["LastModifiedDate"] = stamp
    return 200, None


def _reference_target(org: FakeOrg, sobject: str, field: str) -> str:
    element = org.custom_field(sobject, field)
    target = element.findtext("{http://soap.sforce.com/2006/04/metadata}referenceTo") \
        if element is not None else None
    return target or ""


def _update_one(org: FakeOrg, record: Mapping[str, Any],
                headers: Mapping[str, str]) -> dict[str, Any]:
    sobject = record.get("attributes", {}).get("type", "")
    existing = org.db.get(sobject, {}).get(record.get("Id", ""))
    if existing is None:
        return {"id": record.get("Id"), "success": False,
                "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted",
                            "fields": []}]}
    body = {k: v for k, v in record.items() if k not in ("attributes", "Id")}
    status, answer = write(org, sobject, existing, body, headers)
    if status >= 300:
        return {"id": record["Id"], "success": False,
                "errors": [{"statusCode": answer[0]["errorCode"], "message": answer[0]["message"],
                            "fields": answer[0]["fields"]}]}
    return {"id": record["Id"], "success": True, "errors": []}


#: Parent → child relationships the double knows: (parent, name) → (child, foreign key).
CHILD_RELATIONSHIPS = {
    ("Account", "Opportunities"): ("Opportunity", "AccountId"),
    ("Account", "Contacts"): ("Contact", "AccountId"),
    ("Account", "AccountTeamMembers"): ("AccountTeamMember", "AccountId"),
}


def run_query(org: FakeOrg, text: str) -> tuple[int, Any]:
    """Answer ``GET query/?q=`` (first page; the rest behind ``nextRecordsUrl``)."""
    try:
        query = soql.parse(text)
    except soql.SoqlError as exc:
        return 400, error("MALFORMED_QUERY", str(exc))
    if not _object_ok(org, query.sobject):
        return 400, error("INVALID_TYPE",
                          f"sObject type '{query.sobject}' is not supported.")
    problem = _check(org, query.sobject, query)
    if problem:
        return 400, problem
    rows = _matching(org, query.sobject, query, org.db[query.sobject].values())
    return 200, page(org, [_shape(org, query.sobject, query, r) for r in rows])


def _object_ok(org: FakeOrg, sobject: str) -> bool:
    return sobject in org.db and (sobject != "AccountTeamMember" or org.account_teams)


def child_relationship(org: FakeOrg, parent: str, name: str) -> tuple[str, str, str] | None:
    """``(canonical name, child object, foreign key)`` of a child relationship (names are
    case-insensitive, as in Salesforce), or None when ``parent`` has no such relationship."""
    for (owner, canonical), (child, key) in CHILD_RELATIONSHIPS.items():
        if owner == parent and canonical.lower() == name.lower() and _object_ok(org, child):
            return canonical, child, key
    return None


def _check(org: FakeOrg, sobject: str, query: soql.Query) -> list[dict[str, Any]] | None:
    """The error Salesforce answers for unknown fields, relationships or objects."""
    for path in query.fields + [name for name, _ in query.order]:
        if not _path_ok(org, sobject, path):
            return error("INVALID_FIELD", f"No such column '{path}' on entity '{sobject}'.")
    for child in query.children:
        relation = child_relationship(org, sobject, child.sobject)
        if relation is None:
            return error("INVALID_TYPE", (
                f"Didn't understand relationship '{child.sobject}' in FROM part of query call. "
                "If you are attempting to use a custom relationship, be sure to append the "
                "'__r' after the custom relationship name. Please reference your WSDL or the "
                "describe call for the appropriate names."))
        problem = _check(org, relation[1], child)
        if problem:
            return problem
    for semi in query.semi_joins:
        if not _object_ok(org, semi.query.sobject):
            return error("INVALID_TYPE",
                         f"sObject type '{semi.query.sobject}' is not supported.")
        problem = _check(org, semi.query.sobject, semi.query)
        if problem:
            return problem
    return None


def _matching(org: FakeOrg, sobject: str, query: soql.Query,
              candidates: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records among ``candidates`` that ``query`` selects, ordered and limited."""
    for semi in query.semi_joins:
        inner = semi.query
        semi.values = [org.value(inner.sobject, r, inner.fields[0])
                       for r in _matching(org, inner.sobject, inner,
                                          org.db[inner.sobject].values())]
    rows = [r for r in candidates if query.where(lambda p, r=r: org.value(sobject, r, p))]
    for name, descending in reversed(query.order):
        rows.sort(key=lambda r, n=name: sort_key(org.value(sobject, r, n)), reverse=descending)
    return rows[:query.limit] if query.limit is not None else rows


def _shape(org: FakeOrg, sobject: str, query: soql.Query,
           record: dict[str, Any]) -> dict[str, Any]:
    """A selected record; each child subquery becomes ``{"totalSize", "done", "records"}``
    under the relationship name, or null when the record has no such children."""
    out = org.shape(sobject, record, query.fields)
    for child in query.children:
        found = child_relationship(org, sobject, child.sobject)
        assert found is not None  # _check refused unknown relationships
        name, child_type, key = found
        kids = [c for c in org.db[child_type].values() if c.get(key) == record["Id"]]
        records = [_shape(org, child_type, child, c)
                   for c in _matching(org, child_type, child, kids)]
        out[name] = {"totalSize": len(records), "done": True, "records": records} \
            if records else None
    return out


def page(org: FakeOrg, rows: list[dict[str, Any]], offset: int = 0,
         cursor: str | None = None) -> dict[str, Any]:
    """One page of ``rows`` from ``offset``; remembers the rest under a cursor."""
    cursor = cursor or f"01gFAKE{org.next_number()}"
    org.cursors[cursor] = rows
    chunk = rows[offset:offset + org.page_size]
    done = offset + org.page_size >= len(rows)
    answer: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": chunk}
    if not done:
        answer["nextRecordsUrl"] = (f"/services/data/v{VERSION}/query/"
                                    f"{cursor}-{offset + org.page_size}")
    return answer

def more(org: FakeOrg, locator: str) -> tuple[int, Any]:
    """Answer ``GET query/<cursor>-<offset>``."""
    cursor, _, offset = locator.rpartition("-")
    if cursor not in org.cursors:
        return 400, error("INVALID_QUERY_LOCATOR", "invalid query locator")
    return 200, page(org, org.cursors[cursor], int(offset), cursor)

def _path_ok(org: FakeOrg, sobject: str, path: str) -> bool:
    parts = path.split(".")
    if len(parts) == 1:
        return org.knows(sobject, path)
    return bool(parts[0])


def composite(org: FakeOrg, payload: Mapping[str, Any]) -> tuple[int, Any]:
    """``POST composite``: limits, ``@{ref}`` references, allOrNone rollback."""
    refused = _composite_limits(payload["compositeRequest"])
    if refused:
        return 400, refused
    all_or_none = bool(payload.get("allOrNone"))
    saved = copy.deepcopy(org.db) if all_or_none else None
    bodies: dict[str, Any] = {}
    out: list[dict[str, Any]] = []
    failed = False
    for sub in payload["compositeRequest"]:
        ref = sub["referenceId"]
        if failed and all_or_none:
            out.append(_halted(ref))
            continue
        try:
            url = _resolve(sub["url"], bodies)
            body = _resolve(sub.get("body"), bodies)
        except LookupError as exc:
            status, answer = 400, error("PROCESSING_HALTED",
                                        f"Invalid reference specified. No value for {exc}")
        else:
            path = urlsplit(url).path.split(f"/services/data/v{VERSION}/", 1)[1]
            query = urlsplit(url).query
            status, answer = dispatch(org, sub["method"], path + ("?" + query if query else ""),
                                      body, sub.get("httpHeaders") or {})
        bodies[ref] = answer
        out.append({"body": answer, "httpHeaders": {}, "httpStatusCode": status,
                    "referenceId": ref})
        failed = failed or status >= 400
    if failed and all_or_none and saved is not None:
        org.db = saved
        out = [item if item["httpStatusCode"] >= 400 else _halted(item["referenceId"])
               for item in out]
    return 200, {"compositeResponse": out}


#: Composite limits (REST API guide, "Composite"): subrequests per call, and how many of
#: them may be queries (``query``/``queryAll``) or sObject Collections.
MAX_SUBREQUESTS = 25
MAX_QUERY_OR_COLLECTION = 5


def _composite_limits(subrequests: list[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """The error refusing the whole Composite call, or None when it is within limits.

    The limits are documented; the error body Salesforce sends for them is not (no primary
    source found), so the code and wording here are the double's own.
    """
    if len(subrequests) > MAX_SUBREQUESTS:
        return error("INVALID_INPUT", f"Composite request has {len(subrequests)} subrequests; "
                     f"the maximum is {MAX_SUBREQUESTS}.")
    heavy = [sub["referenceId"] for sub in subrequests if _query_or_collection(sub["url"])]
    if len(heavy) > MAX_QUERY_OR_COLLECTION:
        return error("INVALID_INPUT", f"Composite request has {len(heavy)} query or sObject "
                     f"Collections subrequests ({', '.join(heavy)}); the maximum is "
                     f"{MAX_QUERY_OR_COLLECTION}.")
    return None


def _query_or_collection(url: str) -> bool:
    path = urlsplit(url).path.split(f"/services/data/v{VERSION}/", 1)[-1].strip("/")
    head = path.split("/", 1)[0]
    return head in ("query", "queryAll") or path.startswith("composite/sobjects")


def _halted(ref: str) -> dict[str, Any]:
    return {"body": error("PROCESSING_HALTED", "The transaction was rolled back since another "
                          "operation in the same transaction failed."),
            "httpHeaders": {}, "httpStatusCode": 400, "referenceId": ref}


_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")


def _lookup(match: re.Match[str], bodies: Mapping[str, Any]) -> Any:
    value: Any = bodies[match.group(1)]
    for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", match.group(2)):
        value = value[step[0]] if step[0] else value[int(step[1])]
    if value is None:
        raise LookupError(match.group(0))
    return value


def _resolve(value: Any, bodies: Mapping[str, Any]) -> Any:
    try:
        if isinstance(value, str):
            whole = _REFERENCE.fullmatch(value)
            if whole:
                return _lookup(whole, bodies)
            return _REFERENCE.sub(lambda m: str(_lookup(m, bodies)), value)
        if isinstance(value, Mapping):
            return {k: _resolve(v, bodies) for k, v in value.items()}
        if isinstance(value, list):
            return [_resolve(v, bodies) for v in value]
    except (KeyError, IndexError, TypeError) as exc:
        raise LookupError(str(exc)) from exc
    return value
