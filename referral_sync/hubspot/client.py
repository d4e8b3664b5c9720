"""The HubSpot transport: hubspot-api-client's generated APIs, with what the SDK leaves out.

- **Timeouts.** The SDK sets none and passes ``timeout=None`` explicitly, which beats any pool
  default; only ``_request_timeout`` on each call works, so :meth:`HubSpotClient.call` adds it.
- **Retries that cover POST.** urllib3's default ``allowed_methods`` leaves out POST and PATCH,
  i.e. search, create, update and every batch endpoint. Our idempotent calls (upserts, creates
  guarded by a unique property, searches, PATCH, association PUT) go through a pool that
  retries them on connection errors and 5xx; plain creates that could duplicate (tasks) go
  through a second pool that only retries connection failures.
- **429 by policy.** urllib3 cannot read the body, so 429 is handled here: a
  ``TEN_SECONDLY_ROLLING`` (or search ``SECONDLY``) limit waits and retries; ``DAILY`` stops
  at once, alerts, and raises ``CrmRetryableError`` with ``retry_after`` = time to the reset.
  Until then further calls fail fast without touching HubSpot (the error budget counts 429s).
- **One error type.** Everything raised becomes ``CrmPermanentError``/``CrmRetryableError``.
- **Counting.** Every HTTP request, including urllib3's own retries, is counted.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Self

import hubspot
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from urllib3.util.retry import Retry

from referral_sync.errors import CrmRetryableError
from referral_sync.hubspot.translate import DAILY, PROVIDER, translate

log = logging.getLogger(__name__)

Alert = Callable[[str], None]


class CallCounter:
    """A thread-safe count of HTTP requests sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def add(self, n: int = 1) -> None:
        """Count ``n`` more requests."""
        with self._lock:
            self._value += n

    @property
    def value(self) -> int:
        """Requests counted so far."""
        with self._lock:
            return self._value


class CountingRetry(Retry):
    """A urllib3 ``Retry`` that counts each retry it performs as one more request.

    urllib3 would also replay any 429 carrying ``Retry-After``, blind to HubSpot's policy
    (a ``DAILY`` limit must not be retried): 429 is left to :meth:`HubSpotClient.call`.
    """

    RETRY_AFTER_STATUS_CODES = frozenset({413, 503})

    def __init__(self, *args: Any, counter: CallCounter | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counter = counter

    def new(self, **kw: Any) -> Self:
        """Carry the counter into the copy urllib3 makes on every attempt."""
        copy = super().new(**kw)
        copy.counter = self.counter
        return copy

    def sleep(self, response: Any = None) -> None:
        """urllib3 sleeps exactly once before each retried request: count it there."""
        if self.counter is not None:
            self.counter.add()
        super().sleep(response)


def idempotent_retry(counter: CallCounter, backoff: float) -> CountingRetry:
    """Retries for calls that are safe to repeat, POST included (``allowed_methods=None``)."""
    return CountingRetry(
        total=5, connect=3, read=2, status=3, other=0, backoff_factor=backoff, backoff_max=10,
        status_forcelist=(500, 502, 503, 504), allowed_methods=None,
        respect_retry_after_header=True, raise_on_status=False, counter=counter,
    )


def single_shot_retry(counter: CallCounter) -> CountingRetry:
    """Retries only for failures where the request never reached HubSpot."""
    return CountingRetry(total=3, connect=3, read=0, status=0, other=0, allowed_methods=None,
                         raise_on_status=False, counter=counter)


@dataclass(frozen=True)
class Reply:
    """A successful HubSpot answer: status (200, 201, 204, 207) and the parsed JSON body."""

    status: int
    data: Any

    def json(self) -> dict[str, Any]:
        """The body as an object (empty for 204)."""
        return self.data if isinstance(self.data, dict) else {}


def _is_short_rate_limit(exc: BaseException) -> bool:
    return (isinstance(exc, CrmRetryableError) and exc.http_status == 429
            and exc.code != DAILY)


class HubSpotClient:
    """Holds the generated API objects (building them is costly: each access makes a new
    connection pool) and runs every call with timeout, retries, counting and translation."""

    def __init__(
        self,
        *,
        access_token: str,
        base_url: str,
        timeout: float = 30.0,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
        portal_tz: tzinfo = UTC,
        rate_limit_retries: int = 4,
        transport_backoff: float = 0.5,
        on_alert: Alert | None = None,
    ) -> None:
        self._counter = CallCounter()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep or _real_sleep
        self._zone = portal_tz
        self._timeout = (min(3.05, timeout), timeout)
        self._rate_limit_retries = rate_limit_retries
        self._alert = on_alert or (lambda message: log.error(message))
        self._blocked_until: datetime | None = None
        host = base_url.rstrip("/")
        sdk = hubspot.Client.create(access_token=access_token, host=host,
                                    retry=idempotent_retry(self._counter, transport_backoff))
        once = hubspot.Client.create(access_token=access_token, host=host,
                                     retry=single_shot_retry(self._counter))
        crm = sdk.crm
        self.objects = crm.objects.basic_api
        self.batch = crm.objects.batch_api
        self.search_api = crm.objects.search_api
        self.create_once = once.crm.objects.basic_api
        self.create_once_batch = once.crm.objects.batch_api
        self.properties = crm.properties.core_api
        self.property_batch = crm.properties.batch_api
        self.groups = crm.properties.groups_api
        self.associations = crm.associations.v4.basic_api
        self.labels = crm.associations.v4.schema.definitions_api
        self.schemas = crm.schemas.core_api
        self.owners = crm.owners.owners_api
        self.pipelines = crm.pipelines.pipelines_api

    def api_calls(self) -> int:
        """HTTP requests sent so far, retries included."""
        return self._counter.value

    def now(self) -> datetime:
        """The injected clock."""
        return self._clock()

    def call(self, op: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Reply:
        """Run one SDK method; rate limits of the short windows are waited out.

        Args:
            op: a label for messages, e.g. ``"contacts.create"``.
            method: a bound method of one of the generated API objects.

        Raises:
            CrmRetryableError: rate limit (``DAILY`` at once), 5xx or transport failure after
                the retries.
            CrmPermanentError: any other 4xx.
        """
        retrying = Retrying(
            stop=stop_after_attempt(self._rate_limit_retries + 1),
            wait=_rate_limit_wait, retry=retry_if_exception(_is_short_rate_limit),
            sleep=self._sleep, reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._once(op, method, *args, **kwargs)
        raise AssertionError("tenacity returns or raises")  # pragma: no cover

    def _once(self, op: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Reply:
        now = self._clock()
        if self._blocked_until is not None and now < self._blocked_until:
            raise CrmRetryableError(
                f"HubSpot daily API limit reached; not calling {op} until the reset",
                provider=PROVIDER, http_status=429, code=DAILY,
                retry_after=(self._blocked_until - now).total_seconds(),
            )
        self._counter.add()
        try:
            response = method(*args, _request_timeout=self._timeout, _preload_content=False,
                              **kwargs)
            raw = response.data
            response.release_conn()
        except Exception as exc:
            if not type(exc).__module__.startswith(("hubspot.", "urllib3")):
                raise
            error = translate(exc, op, now=now, zone=self._zone)
            if isinstance(error, CrmRetryableError) and error.code == DAILY:
                self._blocked_until = now + timedelta(seconds=error.retry_after or 3600.0)
                self._alert(f"HubSpot daily API limit reached during {op}; calls paused "
                            f"until {self._blocked_until.isoformat()}")
            raise error from exc
        data = json.loads(raw) if raw else None
        return Reply(status=int(response.status), data=data)


def _rate_limit_wait(state: RetryCallState) -> float:
    """HubSpot's ``Retry-After`` if sent (it is undocumented), else 1, 2, 4, 8 s (cap 10 s):
    the ten-second window rolls, so a short wait usually suffices."""
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    if isinstance(exc, CrmRetryableError) and exc.retry_after is not None:
        return min(exc.retry_after, 10.0)
    return float(min(10, 2 ** (state.attempt_number - 1)))


def _real_sleep(seconds: float) -> None:
    threading.Event().wait(seconds)
