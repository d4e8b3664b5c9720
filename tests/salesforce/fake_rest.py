"""REST resources of the Salesforce double (routing, sObject writes, Collections)."""

from __future__ import annotations

from collections.abc import Mapping
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
    if parts[0] == "query" and len(parts) == 1:
        return run_query(org, query_text(path))
    if parts[0] == "query":
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


def run_query(org: FakeOrg, text: str) -> tuple[int, Any]:
    """Answer ``GET query/?q=`` (first page; the rest behind ``nextRecordsUrl``)."""
    try:
        query = soql.parse(text)
    except soql.SoqlError as exc:
        return 400, error("MALFORMED_QUERY", str(exc))
    if query.sobject not in org.db or (query.sobject == "AccountTeamMember"
                                        and not org.account_teams):
        return 400, error("INVALID_TYPE",
                          f"sObject type '{query.sobject}' is not supported.")
    for path in query.fields + [name for name, _ in query.order]:
        if not _path_ok(org, query.sobject, path):
            return 400, error("INVALID_FIELD", f"No such column '{path}' on entity "
                              f"'{query.sobject}'.")
    rows = [r for r in org.db[query.sobject].values()
            if query.where(lambda p, r=r: org.value(query.sobject, r, p))]
    for name, descending in reversed(query.order):
        rows.sort(key=lambda r, n=name: sort_key(org.value(query.sobject, r, n)),
                  reverse=descending)
    rows = rows[:query.limit] if query.limit is not None else rows
    shaped = [org.shape(query.sobject, r, query.fields) for r in rows]
    return 200, page(org, shaped)

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

