"""HubSpot request signatures, verified as a pure function of the request and the time.

Versions (HubSpot's "validating requests" guide; the secret is the app's client secret):

- **v3** (``X-HubSpot-Signature-v3`` + ``X-HubSpot-Request-Timestamp`` in epoch ms): base64
  HMAC-SHA256 over ``method + uri + body + timestamp``. The URI is the full URL HubSpot
  called, with exactly twelve percent-escapes decoded first (``%3A`` ``%2F`` ``%3F`` ``%40``
  ``%21`` ``%24`` ``%27`` ``%28`` ``%29`` ``%2A`` ``%2C`` ``%3B``; we match them in either
  case). Requests older than five minutes are refused, and so, unlike the SDK's helper, are
  requests stamped more than five minutes in the future.
- **v2** (``X-HubSpot-Signature``, version header ``v2``; workflow webhooks): hex SHA-256 of
  ``secret + method + uri + body`` with the URI exactly as called.
- **v1** (``X-HubSpot-Signature``, version ``v1`` or absent): hex SHA-256 of
  ``secret + body``.

v1/v2 are accepted only when no v3 header is present; they carry no timestamp, so replay
protection for them is the inbox's de-duplication. Every comparison is constant-time and
every configured secret is tried (secret rotation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from referral_sync.errors import SignatureError

TOLERANCE = timedelta(minutes=5)
_V3 = "x-hubspot-signature-v3"
_TIMESTAMP = "x-hubspot-request-timestamp"
_LEGACY = "x-hubspot-signature"
_VERSION = "x-hubspot-signature-version"
_DECODED = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
            "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
_ESCAPE = re.compile("|".join(_DECODED), re.IGNORECASE)


def canonical_uri(url: str) -> str:
    """The URL with HubSpot's twelve escapes decoded (and nothing else)."""
    return _ESCAPE.sub(lambda m: _DECODED[m.group(0).upper()], url)


def sign_v3(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    """The ``X-HubSpot-Signature-v3`` value for a request."""
    message = method.encode() + canonical_uri(url).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_v2(secret: str, method: str, url: str, body: bytes) -> str:
    """The v2 ``X-HubSpot-Signature`` value (URI exactly as called)."""
    return hashlib.sha256(secret.encode() + method.encode() + url.encode() + body).hexdigest()


def sign_v1(secret: str, body: bytes) -> str:
    """The v1 ``X-HubSpot-Signature`` value."""
    return hashlib.sha256(secret.encode() + body).hexdigest()


def _matches(candidates: list[str], presented: str) -> bool:
    # Compare against every secret, without stopping early, so timing says nothing about
    # which secret (if any) matched.
    results = [hmac.compare_digest(c.encode(), presented.encode()) for c in candidates]
    return any(results)


def _check_time(raw: str | None, now: datetime, tolerance: timedelta) -> str:
    if raw is None or not raw.strip().isdigit():
        raise SignatureError("missing or malformed X-HubSpot-Request-Timestamp")
    stamp = raw.strip()
    skew_ms = abs(int(now.timestamp() * 1000) - int(stamp))
    if skew_ms > tolerance.total_seconds() * 1000:
        raise SignatureError("request timestamp is more than 5 minutes from now")
    return stamp


def verify_signature(
    *,
    method: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: datetime,
    tolerance: timedelta = TOLERANCE,
) -> str:
    """Check a HubSpot request's signature; returns the version that matched.

    Args:
        method: the HTTP method as received (``"POST"``).
        url: the full public URL HubSpot called: scheme, host, raw path and raw query.
        body: the raw request body, byte for byte.
        headers: the request headers (any case).
        secrets: the client secret first, then previous secrets still accepted.
        now: the current time (aware).
        tolerance: how far the v3 timestamp may be from ``now``, either way.

    Raises:
        SignatureError: no usable secret, signature missing or wrong, or timestamp stale,
            future-dated or malformed.
    """
    usable = [s for s in secrets if s]
    if not usable:
        raise SignatureError("no HubSpot client secret configured")
    lowered = {k.lower(): v for k, v in headers.items()}
    if _V3 in lowered:
        stamp = _check_time(lowered.get(_TIMESTAMP), now, tolerance)
        expected = [sign_v3(s, method, url, body, stamp) for s in usable]
        if _matches(expected, lowered[_V3].strip()):
            return "v3"
        raise SignatureError("v3 signature does not match")
    presented = lowered.get(_LEGACY)
    if presented is None:
        raise SignatureError("no HubSpot signature header")
    version = lowered.get(_VERSION, "v1").strip().lower()
    if version == "v2":
        expected = [sign_v2(s, method, url, body) for s in usable]
    elif version == "v1":
        expected = [sign_v1(s, body) for s in usable]
    else:
        raise SignatureError(f"unsupported signature version {version[:10]!r}")
    if _matches(expected, presented.strip().lower()):
        return version
    raise SignatureError(f"{version} signature does not match")
