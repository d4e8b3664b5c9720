"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

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
    """Ready when the store answers and the task queue is reachable (503 otherwise, naming
    which one failed, never how)."""
    wiring = components()
    body: dict[str, Any] = {"status": "ready"}
    try:
        body["jobs"] = wiring.store.inbox.counts()
    except SQLAlchemyError as exc:
        body.update(status="unavailable", store=type(exc).__name__)
    if wiring.queue is not None:
        try:
            wiring.queue.ping()
            body["queue"] = {"depth": wiring.queue.depth()}
        except Exception as exc:  # noqa: BLE001 - any backend failure means "not ready"
            body.update(status="unavailable", queue=type(exc).__name__)
    return jsonify(body), 200 if body["status"] == "ready" else 503


@blueprint.get("/metrics")
def metrics_text() -> Response:
    """Prometheus text exposition."""
    return Response(metrics().render(), mimetype=CONTENT_TYPE_LATEST)
