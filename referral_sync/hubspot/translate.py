"""Translate what hubspot-api-client and urllib3 raise into our one error hierarchy.

Every generated hubspot module (``hubspot.crm.objects``, ``hubspot.crm.properties``, …) has its
*own* ``ApiException`` class with no shared base but ``Exception``, so we recognise them by
module and attributes instead of by class. Connection errors and timeouts are not wrapped by
the SDK at all: they arrive as raw urllib3 exceptions.

HubSpot's error JSON (every field optional, per its error-handling guide)::

    {"status": "error", "message": "…", "correlationId": "…", "category": "VALIDATION_ERROR",
     "errors": [{"message": "…", "code": "…"}], "context": {"missingScopes": ["…"]},
     "errorType": "RATE_LIMIT", "policyName": "DAILY"}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

import urllib3.exceptions

from referral_sync.errors import CrmPermanentError, CrmRetryableError
from referral_sync.logs import redact

PROVIDER = "hubspot"
DAILY = "DAILY"
#: HubSpot's 409 message for an existing record names its id ("… Existing ID: 37765128953").
_EXISTING_ID = re.compile(r"existing\s+(?:object\s+)?id\s*[:=]\s*(\d+)", re.IGNORECASE)
_RETRYABLE_STATUSES = frozenset({408, 423, 429})


@dataclass(frozen=True)
class ErrorBody:
    """The parts of a HubSpot error response we act on."""

    message: str = ""
    category: str = ""
    correlation_id: str = ""
    policy: str = ""
    missing_scopes: tuple[str, ...] = ()
    details: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, body: object) -> ErrorBody:
        """Read an error body (bytes, str or already-parsed dict); anything unreadable is
        kept as the message."""
        data: Any = body
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        if isinstance(body, str):
            try:
                data = json.loads(body)
            except ValueError:
                return cls(message=body[:500])
        if not isinstance(data, dict):
            return cls()
        context = data.get("context")
        context = context if isinstance(context, dict) else {}
        scopes = context.get("missingScopes") or context.get("requiredScopes") or []
        errors = data.get("errors")
        errors = errors if isinstance(errors, list) else []
        return cls(
            message=str(data.get("message") or ""),
            category=str(data.get("category") or data.get("errorType") or ""),
            correlation_id=str(data.get("correlationId") or ""),
            policy=str(data.get("policyName") or ""),
            missing_scopes=tuple(str(s) for s in scopes if isinstance(s, str)),
            details=tuple(str(e.get("message", "")) for e in errors if isinstance(e, dict)),
        )


def is_sdk_error(exc: BaseException) -> bool:
    """True for the ``ApiException`` of any hubspot-api-client module (and its subclasses)."""
    return type(exc).__module__.startswith("hubspot.") and hasattr(exc, "status")


def _header(exc: BaseException, name: str) -> str | None:
    headers = getattr(exc, "headers", None)
    if headers is None:
        return None
    value = headers.get(name)
    return str(value) if value is not None else None


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def seconds_until_midnight(now: datetime, zone: tzinfo) -> float:
    """Seconds from ``now`` until the next midnight in ``zone`` (when HubSpot's daily limit
    resets: midnight in the portal's time-zone setting), plus a minute of margin."""
    local = now.astimezone(zone)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - local).total_seconds() + 60.0


def _describe(op: str, status: int, body: ErrorBody) -> str:
    parts = [f"HubSpot {op} failed: HTTP {status}"]
    if body.category:
        parts.append(body.category)
    if body.message:
        parts.append(body.message)
    if body.missing_scopes:
        parts.append("missing scopes: " + ", ".join(body.missing_scopes))
    parts.extend(d for d in body.details[:3] if d and d != body.message)
    if body.correlation_id:
        parts.append(f"correlationId {body.correlation_id}")
    # Validation messages quote submitted values (e-mail addresses); never pass them on.
    return redact("; ".join(parts))


def from_status(
    op: str, status: int, raw_body: object, exc: BaseException, *, now: datetime, zone: tzinfo
) -> CrmPermanentError | CrmRetryableError:
    """The error for an HTTP error answer (any status that is not 2xx)."""
    body = ErrorBody.parse(raw_body)
    message = _describe(op, status, body)
    if status == 429:
        if body.policy == DAILY:
            return CrmRetryableError(
                message, provider=PROVIDER, http_status=429, code=DAILY,
                retry_after=seconds_until_midnight(now, zone),
            )
        return CrmRetryableError(
            message, provider=PROVIDER, http_status=429,
            code=body.policy or "RATE_LIMIT", retry_after=_seconds(_header(exc, "Retry-After")),
        )
    if status >= 500 or status in _RETRYABLE_STATUSES:
        return CrmRetryableError(
            message, provider=PROVIDER, http_status=status, code=body.category or "SERVER_ERROR",
            retry_after=_seconds(_header(exc, "Retry-After")),
        )
    raw = raw_body.decode("utf-8", "replace") if isinstance(raw_body, bytes) else str(raw_body)
    return CrmPermanentError(
        message, provider=PROVIDER, http_status=status or None,
        code=body.category or f"HTTP_{status}", body=raw[:2000],
    )


def translate(
    exc: BaseException, op: str, *, now: datetime, zone: tzinfo
) -> CrmPermanentError | CrmRetryableError:
    """Our error for anything a HubSpot call raised.

    Args:
        exc: what the SDK or urllib3 raised.
        op: what we were doing (``"contacts.create"``), for the message.
        now: the current time (for the daily-limit reset).
        zone: the portal's time zone.
    """
    if is_sdk_error(exc):
        status = int(getattr(exc, "status", 0) or 0)
        if status == 0:
            # The SDK wraps only TLS failures this way: certificate trouble, not a blip.
            reason = redact(str(getattr(exc, "reason", "")))[:300]
            return CrmPermanentError(f"HubSpot {op} failed: {reason}", provider=PROVIDER,
                                     code="TLS")
        return from_status(op, status, getattr(exc, "body", None), exc, now=now, zone=zone)
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        return translate(exc.reason or urllib3.exceptions.HTTPError(), op, now=now, zone=zone)
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return CrmRetryableError(f"HubSpot {op} timed out", provider=PROVIDER, code="TIMEOUT")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return CrmRetryableError(
            f"HubSpot {op} failed: {type(exc).__name__}", provider=PROVIDER, code="CONNECTION"
        )
    if type(exc).__module__.startswith("hubspot."):
        # ApiTypeError / ApiValueError: our request was malformed before it left.
        return CrmPermanentError(f"HubSpot {op} rejected locally: {redact(str(exc))[:300]}",
                                 provider=PROVIDER, code="CLIENT")
    raise TypeError(f"not a HubSpot transport error: {type(exc).__name__}") from exc


def existing_id(error: CrmPermanentError) -> str | None:
    """The id of the record a 409 "already exists" answer points at, if it names one."""
    if error.http_status != 409:
        return None
    found = _EXISTING_ID.search(ErrorBody.parse(error.body).message or error.body)
    return found.group(1) if found else None


def is_not_found(error: Exception) -> bool:
    """True when HubSpot said the record (or property, or object type) does not exist."""
    return isinstance(error, CrmPermanentError) and error.http_status == 404


def is_conflict(error: Exception) -> bool:
    """True for 409 answers: the thing we tried to create is already there."""
    return isinstance(error, CrmPermanentError) and error.http_status == 409
