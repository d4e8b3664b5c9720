"""CSRF protection for the public forms, by the double-submit pattern: a random nonce in a
cookie and the same nonce, signed and time-limited with the app's secret key, in a hidden
field. A form posted from another site has neither."""

from __future__ import annotations

import secrets

from flask import Response, current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "rs_csrf"
MAX_AGE = 2 * 3600


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="form-csrf")


def current_nonce() -> str:
    """This browser's nonce, or a new one."""
    return request.cookies.get(COOKIE) or secrets.token_urlsafe(16)


def token_for(nonce: str) -> str:
    """The hidden-field value for ``nonce``."""
    return _serializer().dumps(nonce)


def set_cookie(response: Response, nonce: str) -> Response:
    """Attach the nonce cookie to a page that carries a form."""
    response.set_cookie(COOKIE, nonce, max_age=MAX_AGE, httponly=True, samesite="Strict",
                        secure=request.is_secure)
    return response


def is_valid() -> bool:
    """True when the posted token is ours, fresh, and matches this browser's cookie."""
    cookie = request.cookies.get(COOKIE)
    try:
        nonce = _serializer().loads(request.form.get("csrf_token", ""), max_age=MAX_AGE)
    except BadSignature:
        return False
    return bool(cookie) and secrets.compare_digest(str(nonce), cookie or "")
