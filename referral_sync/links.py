"""Signed links for referrers: their portal (``/portal/<token>``) and their personal referee
landing page (``/r/<code>``). Tokens are signed with the secret key, so they cannot be forged
or pointed at another referrer."""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeSerializer


class Links:
    """Builds and reads referrer links."""

    def __init__(self, secret: str, base_url: str) -> None:
        self.secret = secret
        self._portal = URLSafeSerializer(secret, salt="referrer-portal")
        self._landing = URLSafeSerializer(secret, salt="referee-landing")
        self.base_url = base_url.rstrip("/")

    def portal_url(self, referrer_email: str) -> str:
        """The referrer's dashboard link, as sent in every notice."""
        return f"{self.base_url}/portal/{self._portal.dumps(referrer_email.lower())}"

    def landing_url(self, referrer_email: str) -> str:
        """The referrer's personal link to share with people they recommend us to."""
        return f"{self.base_url}/r/{self._landing.dumps(referrer_email.lower())}"

    def portal_referrer(self, token: str) -> str | None:
        """The referrer a portal token belongs to, or None if it is not one of ours."""
        return self._read(self._portal, token)

    def landing_referrer(self, code: str) -> str | None:
        """The referrer a landing code belongs to, or None if it is not one of ours."""
        return self._read(self._landing, code)

    @staticmethod
    def _read(serializer: URLSafeSerializer, token: str) -> str | None:
        try:
            value = serializer.loads(token)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None
