"""``POST /webhooks/salesforce/<token>``: Salesforce Outbound Messages.

Salesforce signs nothing, so a message is accepted when the secret path token matches
(constant-time) and its ``OrganizationId`` is the configured org's (first 15 characters).
The body is parsed without calling Salesforce, the whole batch is handed to
``receive_events`` (inbox + jobs, committed), and only then is the exact SOAP ACK returned;
anything else makes Salesforce redeliver, which the inbox turns into no-ops.
Wrong token 401, wrong org 403, malformed or unsafe XML 400, storage trouble 503.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime
from typing import Any, Protocol

from flask import Blueprint, Response, current_app, request

from referral_sync.errors import RetryableError
from referral_sync.program.loader import LoadedProgram
from referral_sync.salesforce.outbound import (
    ACK,
    MalformedOutboundMessage,
    fault,
    parse_outbound_message,
    redact_session_id,
    same_organization,
    to_change_events,
)
from referral_sync.salesforce.status import StatusMapping
from referral_sync.settings import Settings

log = logging.getLogger(__name__)
XML = "text/xml; charset=utf-8"


class _Receiver(Protocol):
    settings: Settings
    program: LoadedProgram

    def receive_events(self, provider: str, events: list[Any], raw: bytes) -> object: ...

    def now(self) -> datetime: ...


def _fault(status: int, message: str) -> Response:
    return Response(fault(message), status=status, content_type=XML)


def receive(token: str) -> Response:
    """Check, parse and durably store one Outbound Message; ACK once stored."""
    components: _Receiver = current_app.extensions["referral_sync"]
    settings = components.settings.salesforce
    expected = settings.webhook_token.get_secret_value() if settings.webhook_token else ""
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        log.warning("salesforce outbound message refused: unknown endpoint token")
        return _fault(401, "unknown endpoint")
    limit = components.settings.max_body_bytes
    if (request.content_length or 0) > limit:
        return _fault(413, f"bodies are limited to {limit} bytes")
    raw = request.get_data(cache=False)
    try:
        message = parse_outbound_message(raw)
    except MalformedOutboundMessage as exc:
        log.warning("salesforce outbound message refused: %s", exc)
        return _fault(400, "malformed outbound message")
    if not settings.org_id or not same_organization(settings.org_id, message.organization_id):
        log.warning("salesforce outbound message refused: organization id does not match "
                    "REFERRAL_SYNC_SALESFORCE__ORG_ID")
        return _fault(403, "unexpected organization")
    statuses = StatusMapping.from_mapping(components.program.config.crm)
    events = to_change_events(message, statuses, components.now())
    try:
        result = components.receive_events("salesforce", events, redact_session_id(raw))
    except RetryableError:
        log.exception("salesforce outbound message not stored; Salesforce will redeliver")
        return _fault(503, "temporarily unavailable")
    log.info("salesforce outbound message stored: %d notification(s), %s new, %s duplicate(s)",
             len(message.notifications), getattr(result, "stored", "?"),
             getattr(result, "duplicates", "?"))
    return Response(ACK, status=200, content_type=XML)


def make_blueprint() -> Blueprint:
    """The blueprint serving ``POST /webhooks/salesforce/<token>``."""
    blueprint = Blueprint("salesforce_webhooks", __name__)
    blueprint.add_url_rule("/webhooks/salesforce/<token>", view_func=receive,
                           methods=["POST"])
    return blueprint
