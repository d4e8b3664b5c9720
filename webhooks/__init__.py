"""The Flask app: JSON intake API, referral form, CRM webhook receivers, health and metrics.

``create_app`` is the app factory; everything it serves comes from one injected
``referral_sync.app.Components``."""

from __future__ import annotations

import importlib
import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from referral_sync.app import Components, build_components
from referral_sync.metrics import Metrics
from referral_sync.settings import Settings

log = logging.getLogger(__name__)

#: CRM receivers live next to their adapters' owners; each module has ``make_blueprint()``.
_RECEIVERS = ("webhooks.salesforce", "webhooks.hubspot")


def create_app(settings: Settings | None = None, *,
               components: Components | None = None) -> Flask:
    """Build the WSGI app. Pass ``components`` to inject collaborators (tests, workers)."""
    components = components or build_components(settings or Settings())
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = components.settings.max_body_bytes
    app.config["SECRET_KEY"] = components.secret_key()
    app.extensions["referral_sync"] = components
    app.extensions["referral_sync_metrics"] = components.metrics or Metrics(components.store)

    from webhooks.api import blueprint as api
    from webhooks.forms import blueprint as forms
    from webhooks.health import blueprint as health
    from webhooks.portal import blueprint as portal

    for bp in (api, forms, health, portal):
        app.register_blueprint(bp)
    for module_name in _RECEIVERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        app.register_blueprint(module.make_blueprint())
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    code = exc.code or 500
    names = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
             413: "body_too_large", 415: "unsupported_media_type"}
    return jsonify(error=names.get(code, "http_error"), message=exc.description), code


def _unexpected_error(exc: Exception) -> tuple[Response, int]:
    # Everything expected has its own 4xx; reaching here is a bug or an outage. Answer 503 so
    # callers retry (CRMs redeliver), and keep the details in the log only.
    log.exception("unhandled error")
    return jsonify(error="temporarily_unavailable",
                   message="the request could not be completed; retry later"), 503
