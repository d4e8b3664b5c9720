"""Translate Salesforce errors into referral-sync's exception hierarchy.

Salesforce reports errors as HTTP status + a JSON list of ``{"errorCode", "message"}``, the
same shape for a whole call, a Composite subrequest and an sObject Collections record.
What matters for us is retryable or not:

- ``UNABLE_TO_LOCK_ROW`` arrives as HTTP 400 but is a transient lock conflict: retry.
- ``REQUEST_LIMIT_EXCEEDED`` arrives as HTTP 403 and is not an auth problem: the org's API
  allowance is spent, so back off for minutes (no ``Retry-After`` is sent) and alert.
- 5xx, ``SERVER_UNAVAILABLE``, timeouts and connection errors: retry.
- Everything else (malformed query, bad field, expired session without credentials,
  missing record, permission) will fail again: permanent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import requests
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError
from zeep.exceptions import Fault

from referral_sync.errors import CrmPermanentError, CrmRetryableError, ReferralSyncError

logger = logging.getLogger(__name__)

PROVIDER = "salesforce"
LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
RETRYABLE_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT"})
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def redact(text: str) -> str:
    """Salesforce echoes field values in messages; keep e-mail addresses out of our logs."""
    return _EMAIL.sub("<email>", text)


def first_error(body: Any) -> tuple[str, str]:
    """``(errorCode, message)`` of a Salesforce error body (list, dict or text)."""
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, Mapping):
        code = body.get("errorCode") or body.get("statusCode") or ""
        return str(code), redact(str(body.get("message", "")))
    return "", redact(str(body or ""))[:300]


def crm_error(
    status: int | None, body: Any, *, limit_backoff: float
) -> CrmPermanentError | CrmRetryableError:
    """The referral-sync error for one Salesforce error response."""
    code, message = first_error(body)
    text = f"salesforce {status or ''} {code}: {message}".replace("  ", " ")
    if code == LIMIT_EXCEEDED:
        logger.warning(
            "salesforce API request limit exceeded (%s); backing off %.0f s — check "
            "Setup > Company Information > API Requests", message, limit_backoff,
        )
        return CrmRetryableError(text, provider=PROVIDER, http_status=status, code=code,
                                 retry_after=limit_backoff)
    if code in RETRYABLE_CODES or (status is not None and (status >= 500 or status == 429)):
        return CrmRetryableError(text, provider=PROVIDER, http_status=status, code=code)
    return CrmPermanentError(text, provider=PROVIDER, http_status=status, code=code,
                             body=redact(str(body))[:1000])


def translate(exc: Exception, *, limit_backoff: float) -> ReferralSyncError:
    """Map an exception raised while talking to Salesforce to our hierarchy."""
    if isinstance(exc, ReferralSyncError):
        return exc
    if isinstance(exc, SalesforceAuthenticationFailed):
        text = f"salesforce login failed: {exc.code} {redact(exc.auth_message)[:300]}"
        if isinstance(exc.code, int) and exc.code >= 500:
            return CrmRetryableError(text, provider=PROVIDER, http_status=exc.code)
        return CrmPermanentError(text, provider=PROVIDER, code=str(exc.code or "AUTH_FAILED"))
    if isinstance(exc, SalesforceError):
        return crm_error(exc.status, exc.content, limit_backoff=limit_backoff)
    if isinstance(exc, Fault):
        # Metadata API SOAP fault, e.g. "sf:INVALID_SESSION_ID" or "sf:REQUEST_LIMIT_EXCEEDED".
        code = str(exc.code or "").rsplit(":", 1)[-1]
        return crm_error(None, {"errorCode": code, "message": exc.message},
                         limit_backoff=limit_backoff)
    if type(exc) is Exception:
        # simple-salesforce reports a failed Metadata save as a bare Exception listing
        # "(statusCode, message)" per component.
        return CrmPermanentError(f"salesforce metadata change refused: {redact(str(exc))[:500]}",
                                 provider=PROVIDER, code="METADATA_ERROR")
    if isinstance(exc, requests.Timeout):
        return CrmRetryableError("salesforce call timed out", provider=PROVIDER, code="TIMEOUT")
    if isinstance(exc, requests.RequestException) and not isinstance(exc, ValueError):
        return CrmRetryableError(f"salesforce unreachable: {type(exc).__name__}",
                                 provider=PROVIDER, code="CONNECTION")
    if isinstance(exc, ValueError | KeyError | IndexError | TypeError):
        # A body that is not what Salesforce documents (an HTML error page from a proxy,
        # truncated JSON): most likely an outage in between, so worth another attempt.
        return CrmRetryableError(f"unexpected salesforce response: {type(exc).__name__}",
                                 provider=PROVIDER, code="BAD_RESPONSE")
    raise exc


def is_transient(exc: BaseException) -> bool:
    """Whether the adapter should retry right away (not for a spent API allowance)."""
    return isinstance(exc, CrmRetryableError) and exc.code != LIMIT_EXCEEDED
