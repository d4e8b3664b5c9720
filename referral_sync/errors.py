"""The one exception hierarchy of referral-sync.

::

    ReferralSyncError
    ├── PermanentError                  retrying cannot help
    │   ├── ConfigurationError          settings or program file invalid
    │   │   └── PolicyError             program file (key path + reason per problem)
    │   ├── ValidationFailed            referral input invalid (field errors)
    │   ├── ReferralRejected            intake refused by policy (reason code)
    │   │   ├── DuplicateReferral       409: already customer / pipeline / referred
    │   │   ├── IneligibleReferrer      403: referrer not eligible
    │   │   └── VelocityExceeded        429: too many referrals from one referrer
    │   ├── IllegalTransition           referral status machine violated
    │   ├── NotFound                    a record the caller named does not exist
    │   ├── SignatureError              webhook signature bad, stale or replayed
    │   └── CrmPermanentError           CRM refused the request (4xx other than 429)
    └── RetryableError                  a later attempt may succeed
        └── CrmRetryableError           CRM 429/5xx/timeout/lock (may carry retry_after)

Adapters translate SDK and HTTP errors into ``Crm*Error`` at their boundary; retries
(tenacity) key off ``RetryableError`` only and live only in adapters.
"""

from __future__ import annotations

from dataclasses import dataclass


class ReferralSyncError(Exception):
    """Root of every error raised by referral-sync."""


class PermanentError(ReferralSyncError):
    """An error that will happen again if the same thing is retried."""


class RetryableError(ReferralSyncError):
    """An error that a later attempt may not hit (rate limit, outage, lock)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConcurrentUpdate(RetryableError):
    """Another worker changed the referral while this one worked on it; the job runs again
    from what is stored now (every CRM write it made is idempotent)."""


class ConfigurationError(PermanentError):
    """Settings are missing or contradictory."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class PolicyError(ConfigurationError):
    """The program file is invalid; ``problems`` holds one "key.path: reason" per issue."""


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one input field."""

    field: str
    message: str


class ValidationFailed(PermanentError):
    """Referral input is malformed; each problem names its field."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


class ReferralRejected(PermanentError):
    """Intake refused by policy. ``code`` is stable; ``message`` may be shown to the referrer."""

    http_status = 422

    def __init__(self, code: str, message: str, **details: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


class DuplicateReferral(ReferralRejected):
    """The referee is already a customer, in open pipeline, or referred before."""

    http_status = 409


class IneligibleReferrer(ReferralRejected):
    """The referrer may not take part in the program."""

    http_status = 403


class VelocityExceeded(ReferralRejected):
    """The referrer submitted more referrals than the program allows in a period."""

    http_status = 429


class IllegalTransition(PermanentError):
    """A referral status change that the status machine does not allow."""


class NotFound(PermanentError):
    """A record the caller named does not exist."""


class SignatureError(PermanentError):
    """A webhook's signature is missing, wrong, replayed, too old or too far in the future."""


class CrmPermanentError(PermanentError):
    """The CRM refused a request in a way that retrying will not fix."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        http_status: int | None = None,
        code: str = "",
        body: str = "",
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.http_status = http_status
        self.code = code
        self.body = body


class CrmRetryableError(RetryableError):
    """The CRM was unavailable, rate-limited, timed out or had a lock conflict."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        http_status: int | None = None,
        code: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.provider = provider
        self.http_status = http_status
        self.code = code
