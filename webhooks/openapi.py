"""The OpenAPI 3.1 document of the JSON API, with request schemas generated from the same
pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from referral_sync.service import Submission


def _error(description: str, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"error": {"type": "string"}, "message": {"type": "string"},
                                  "code": {"type": "string"}}
    properties.update(extra or {})
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "required": ["error"], "properties": properties}}}}


def openapi_document(base_url: str) -> dict[str, Any]:
    """The document served at ``/openapi.json``."""
    submission = Submission.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = submission.pop("$defs", {})
    schemas["Submission"] = submission
    accepted = {"type": "object", "required": ["id", "status", "owner"], "properties": {
        "id": {"type": "string"}, "status": {"type": "string"},
        "program": {"type": "string"},
        "owner": {"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string"}}},
        "crm_record": {"type": ["object", "null"]},
        "crm_write": {"type": "string", "enum": ["done", "pending"]},
        "routing_reason": {"type": ["string", "null"]},
        "first_action": {"type": ["string", "null"]},
        "review_reasons": {"type": "array", "items": {"type": "string"}},
        "policy_version": {"type": ["string", "null"]},
    }}
    problems = {"problems": {"type": "array", "items": {"type": "object", "properties": {
        "field": {"type": "string"}, "message": {"type": "string"}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "referral-sync", "version": "1"},
        "servers": [{"url": base_url}],
        "paths": {"/api/v1/referrals": {"post": {
            "operationId": "createReferral",
            "summary": "Submit a referral",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Submission"}}}},
            "responses": {
                "201": {"description": "Accepted, routed and written to the CRM",
                        "content": {"application/json": {"schema": accepted}}},
                "202": {"description": "Accepted; the CRM write is queued and will be retried",
                        "content": {"application/json": {"schema": accepted}}},
                "400": _error("Body is not valid JSON"),
                "403": _error("Referrer not eligible (reason code)"),
                "409": _error("Duplicate referral", extra={"duplicate_kind": {"type": "string"}}),
                "413": _error("Body larger than 1 MiB"),
                "415": _error("Body is not application/json"),
                "422": _error("Field errors", extra=problems),
                "429": _error("Too many referrals from this referrer today"),
                "503": _error("Misconfigured or temporarily unavailable"),
            },
        }}},
        "components": {"schemas": schemas},
    }
