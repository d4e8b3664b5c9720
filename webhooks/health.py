"""Liveness, readiness and metrics."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from webhooks.api import components, metrics

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """The process is up."""
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    """The store answers and the job backlog is readable."""
    try:
        counts = components().store.inbox.counts()
    except SQLAlchemyError as exc:
        return jsonify(status="unavailable", store=type(exc).__name__), 503
    return jsonify(status="ready", jobs=counts), 200


@blueprint.get("/metrics")
def metrics_text() -> Response:
    """Prometheus text exposition."""
    return Response(metrics().render(), mimetype=CONTENT_TYPE_LATEST)
