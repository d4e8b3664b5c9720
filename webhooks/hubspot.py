"""``POST /webhooks/hubspot``: HubSpot app webhook batches and workflow webhooks.

Verify on the raw bytes (v3 over the exact public URL; v1/v2 where v3 is absent), parse
without calling HubSpot, hand the batch to ``receive_events`` (inbox + jobs, committed) and
only then answer 204. Bad signatures get 401; malformed bodies 400; too-large bodies 413.
HubSpot retries any non-2xx, and duplicates or reordering are harmless downstream.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol
from urllib.parse import quote

from flask import Blueprint, Response, current_app, jsonify, request

from referral_sync.errors import RetryableError, SignatureError
from referral_sync.hubspot.events import MalformedEvents, parse_events
from referral_sync.hubspot.signatures import verify_signature
from referral_sync.settings import Settings

log = logging.getLogger(__name__)


class _Receiver(Protocol):
    settings: Settings

    def receive_events(self, provider: str, events: list[Any], raw: bytes) -> object: ...

    def now(self) -> Any: ...


def signed_url(public_base_url: str, environ: dict[str, Any]) -> str:
    """The URL HubSpot signed: the configured public origin (plus any prefix a proxy strips)
    and the raw request target as received. Werkzeug's ``request.url`` would decode some
    escapes and ``full_path`` adds a ``?`` to an empty query, either breaking signatures."""
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not target:
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
                     safe="/:@!$&'()*+,;=-._~%")
        query = environ.get("QUERY_STRING", "")
        target = f"{path}?{query}" if query else path
    return public_base_url.rstrip("/") + str(target)


def _secrets(settings: Settings) -> list[str]:
    hs = settings.hubspot
    found = [hs.client_secret] + list(hs.previous_client_secrets)
    return [s.get_secret_value() for s in found if s is not None]


def _problem(status: int, error: str, message: str) -> tuple[Response, int]:
    return jsonify(error=error, message=message), status


def receive() -> Response | tuple[Response, int]:
    """Verify, parse and durably store one delivery; 204 once stored."""
    components: _Receiver = current_app.extensions["referral_sync"]
    settings = components.settings
    limit = settings.max_body_bytes
    if (request.content_length or 0) > limit:
        return _problem(413, "body_too_large", f"bodies are limited to {limit} bytes")
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        return _problem(413, "body_too_large", f"bodies are limited to {limit} bytes")
    now = components.now()
    try:
        version = verify_signature(
            method=request.method, url=signed_url(settings.public_base_url, request.environ),
            body=raw, headers=dict(request.headers), secrets=_secrets(settings), now=now)
    except SignatureError as exc:
        log.warning("hubspot webhook refused", extra={"reason": str(exc)})
        return _problem(401, "invalid_signature", "signature missing, wrong or out of date")
    try:
        events = parse_events(raw, received_at=now, app_id=settings.hubspot.app_id,
                              portal_id=settings.hubspot.portal_id,
                              query=request.args.to_dict())
    except MalformedEvents as exc:
        return _problem(400, "malformed_body", str(exc))
    if events:
        try:
            components.receive_events("hubspot", events, raw)
        except RetryableError:
            log.exception("hubspot webhook batch not stored; HubSpot will redeliver")
            return _problem(503, "temporarily_unavailable", "retry later")
    log.info("hubspot webhook stored", extra={"events": len(events), "signature": version})
    return Response(status=204)


def make_blueprint() -> Blueprint:
    """The blueprint serving ``POST /webhooks/hubspot``."""
    blueprint = Blueprint("hubspot_webhooks", __name__)
    blueprint.add_url_rule("/webhooks/hubspot", view_func=receive, methods=["POST"])
    return blueprint
