"""JSON intake API: ``POST /api/v1/referrals`` and ``GET /openapi.json``."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import ValidationError

from referral_sync.app import Components
from referral_sync.errors import (
    ConfigurationError,
    ReferralRejected,
    VelocityExceeded,
)
from referral_sync.metrics import Metrics
from referral_sync.service import IntakeResult, Submission
from webhooks.openapi import openapi_document

blueprint = Blueprint("api", __name__)


def components() -> Components:
    """The wiring of the running app."""
    value = current_app.extensions["referral_sync"]
    assert isinstance(value, Components)
    return value


def metrics() -> Metrics:
    """The app's metrics registry."""
    value = current_app.extensions["referral_sync_metrics"]
    assert isinstance(value, Metrics)
    return value


def field_problems(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as ``{"field": "referee.email", "message": ...}`` items."""
    problems = []
    for item in exc.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(body)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append({"field": path, "message": message})
    return problems


def accepted_body(result: IntakeResult) -> dict[str, Any]:
    """The JSON a submitter sees for an accepted referral."""
    referral = result.referral
    return {
        "id": referral.id,
        "status": referral.status.value,
        "program": referral.program,
        "owner": {"id": result.owner.id, "name": result.owner.name,
                  "kind": result.owner.kind.value},
        "crm_record": ({"id": result.record.record_id, "type": result.record.record_type}
                       if result.record else None),
        "crm_write": "done" if result.record else "pending",
        "routing_reason": referral.routing_reason,
        "first_action": referral.first_action,
        "review_reasons": result.review_reasons,
        "policy_version": referral.policy_version,
    }


def rejection_response(exc: ReferralRejected) -> tuple[Response, int]:
    """A refused referral: reason code and a message safe to show the referrer."""
    kind = {409: "duplicate", 403: "ineligible", 429: "velocity"}.get(exc.http_status,
                                                                       "rejected")
    body: dict[str, Any] = {"error": kind, "code": exc.code, "message": exc.message}
    if "kind" in exc.details:
        body["duplicate_kind"] = exc.details["kind"]
    response = jsonify(body)
    if isinstance(exc, VelocityExceeded):
        response.headers["Retry-After"] = "86400"
    return response, exc.http_status


@blueprint.post("/api/v1/referrals")
def create_referral() -> tuple[Response, int]:
    """Submit a referral."""
    if not request.is_json:
        return jsonify(error="unsupported_media_type",
                       message="send the referral as application/json"), 415
    raw = request.get_data(cache=True)
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return jsonify(error="malformed_json", message=f"body is not valid JSON: {exc}"), 400
    if not isinstance(payload, dict):
        return jsonify(error="validation_failed",
                       problems=[{"field": "(body)", "message": "must be a JSON object"}]), 422
    try:
        submission = Submission.model_validate(payload)
    except ValidationError as exc:
        metrics().referrals.labels(outcome="invalid").inc()
        return jsonify(error="validation_failed", problems=field_problems(exc)), 422
    try:
        result = components().service.submit(submission)
    except ReferralRejected as exc:
        metrics().referrals.labels(outcome=exc.code).inc()
        return rejection_response(exc)
    except ConfigurationError as exc:
        return jsonify(error="misconfigured", message=str(exc)), 503
    metrics().referrals.labels(outcome="accepted").inc()
    return jsonify(accepted_body(result)), 201 if result.record else 202


@blueprint.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI document of the JSON API."""
    return jsonify(openapi_document(components().settings.public_base_url))
