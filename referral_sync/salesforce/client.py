"""HTTP plumbing around simple-salesforce: timeouts, call counting, retries, Composite.

simple-salesforce sends everything through one ``requests.Session`` but sets no timeout
anywhere (upstream issue #148) and has no Composite helper. We mount an adapter on that
session that injects a timeout and counts every request, retry transient failures with
tenacity, and translate errors at this boundary (``faults.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote_plus

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from simple_salesforce.metadata import SfdcMetadataApi
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from referral_sync.errors import ReferralSyncError
from referral_sync.salesforce.faults import crm_error, is_transient, translate

T = TypeVar("T")

#: Sent on every call: identifies our writes in Setup's API usage and in CDC ``changeOrigin``,
#: and stops active Lead assignment rules from re-routing a Lead we merely update.
DEFAULT_HEADERS = {"Sforce-Call-Options": "client=referral-sync", "Sforce-Auto-Assign": "FALSE"}


class CallCounter:
    """Thread-safe count of HTTP requests sent to Salesforce (each retry counts)."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        """Count one request."""
        with self._lock:
            self._value += 1

    @property
    def value(self) -> int:
        """Requests counted so far."""
        return self._value


class SalesforceHttpAdapter(HTTPAdapter):
    """Injects a default timeout into every request and counts it."""

    def __init__(self, timeout: float, counter: CallCounter) -> None:
        super().__init__()
        self._timeout = timeout
        self._counter = counter

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False,
        timeout: float | tuple[float, float] | None = None, verify: bool | str = True,
        cert: Any = None, proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send with our timeout unless the caller gave one."""
        self._counter.add()
        return super().send(request, stream=stream, verify=verify, cert=cert, proxies=proxies,
                            timeout=self._timeout if timeout is None else timeout)


def prepare_session(session: requests.Session, timeout: float,
                    counter: CallCounter) -> requests.Session:
    """Mount the timeout/counting adapter and our default headers on ``session``."""
    adapter = SalesforceHttpAdapter(timeout, counter)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update(DEFAULT_HEADERS)
    return session


@dataclass(frozen=True)
class SubRequest:
    """One Composite subrequest; ``path`` is relative to ``/services/data/vXX.X/``."""

    ref: str
    method: str
    path: str
    body: Any = None
    headers: Mapping[str, str] | None = None


def query_path(soql: str) -> str:
    """A Composite query URL; ``@{ref...}`` references stay readable for Salesforce."""
    return "query/?q=" + quote_plus(soql, safe="@{}[]'=,.()*:<>!")


@dataclass(frozen=True)
class SubResult:
    """The answer to one subrequest."""

    ref: str
    status: int
    body: Any = field(default=None)

    @property
    def ok(self) -> bool:
        """Whether Salesforce accepted the subrequest."""
        return self.status < 400

    def records(self) -> list[dict[str, Any]]:
        """The records of a successful query subrequest (empty if it failed)."""
        if not self.ok or not isinstance(self.body, Mapping):
            return []
        return list(self.body.get("records") or [])


class SalesforceClient:
    """A lazily connected simple-salesforce instance with retries and call counting."""

    def __init__(
        self,
        connect: Callable[[requests.Session], Salesforce],
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        limit_backoff: float = 300.0,
        max_wait: float = 8.0,
    ) -> None:
        self._counter = CallCounter()
        self._timeout = timeout
        self._session = prepare_session(session or requests.Session(), timeout, self._counter)
        self._connect = connect
        self._sf: Salesforce | None = None
        self._lock = threading.Lock()
        self._attempts = attempts
        self._sleep = sleep
        self._max_wait = max_wait
        self.limit_backoff = limit_backoff

    @classmethod
    def wrap(cls, sf: Salesforce, **kwargs: Any) -> SalesforceClient:
        """Use an already built ``Salesforce`` (its session gets our adapter and headers)."""
        return cls(lambda _session: sf, session=sf.session, **kwargs)

    def api_calls(self) -> int:
        """HTTP requests sent so far, logins and retries included."""
        return self._counter.value

    def salesforce(self) -> Salesforce:
        """The connected instance; logs in on first use (password and JWT modes)."""
        with self._lock:
            if self._sf is None:
                self._sf = self._connect(self._session)
            return self._sf

    @property
    def instance_url(self) -> str:
        """``https://<instance host>`` of the connected org."""
        return f"https://{self.salesforce().sf_instance}"

    def call(self, operation: Callable[[Salesforce], T]) -> T:
        """Run ``operation``, retrying transient failures with jittered exponential backoff.

        Raises:
            CrmRetryableError: still failing after the last attempt, or the org's API
                request limit is spent (not retried here; ``retry_after`` says when).
            CrmPermanentError: Salesforce refused the request.
        """
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.5, max=self._max_wait) + wait_random(0, 0.5),
            sleep=self._sleep,
            reraise=True,
        )
        result: T = retrying(self._once, operation)
        return result

    def _once(self, operation: Callable[[Salesforce], T]) -> T:
        try:
            return operation(self.salesforce())
        except ReferralSyncError:
            raise
        except Exception as exc:
            raise translate(exc, limit_backoff=self.limit_backoff) from exc

    def query(self, soql: str) -> list[dict[str, Any]]:
        """The first page of a query (callers use LIMIT), in one API call."""
        result = self.call(lambda sf: sf.query(soql))
        return list(result.get("records") or [])

    def query_pages(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record of a query, fetched page by page (each page retried on its own)."""
        page = self.call(lambda sf: sf.query(soql))
        while True:
            yield from page.get("records") or []
            if page.get("done", True):
                return
            page = self._next_page(str(page["nextRecordsUrl"]))

    def _next_page(self, next_url: str) -> Any:
        return self.call(lambda sf: sf.query_more(next_url, identifier_is_url=True))

    def composite(
        self,
        subrequests: Sequence[SubRequest],
        read: Callable[[dict[str, SubResult]], T],
        *,
        all_or_none: bool = False,
    ) -> T:
        """Send subrequests as one Composite call (one API call) and ``read`` the results.

        ``read`` runs inside the retry loop, so a subrequest failing with a transient error
        (it raises via ``raise_for``) retries the whole call; every write we send this way
        is an upsert on an external id, so a retry cannot duplicate a record.
        """
        def once(sf: Salesforce) -> T:
            payload = {
                "allOrNone": all_or_none,
                "compositeRequest": [self._subrequest(sf, sub) for sub in subrequests],
            }
            answer = sf.restful("composite", method="POST", json=payload) or {}
            results = {
                item["referenceId"]: SubResult(item["referenceId"], int(item["httpStatusCode"]),
                                               item.get("body"))
                for item in answer.get("compositeResponse", [])
            }
            return read(results)

        return self.call(once)

    @staticmethod
    def _subrequest(sf: Salesforce, sub: SubRequest) -> dict[str, Any]:
        item: dict[str, Any] = {"method": sub.method, "referenceId": sub.ref,
                                "url": f"/services/data/v{sf.sf_version}/{sub.path}"}
        if sub.body is not None:
            item["body"] = sub.body
        if sub.headers:
            item["httpHeaders"] = dict(sub.headers)
        return item

    def raise_for(self, result: SubResult | None) -> SubResult:
        """Raise the translated error of a failed subrequest (or a missing one)."""
        if result is None:
            raise crm_error(None, "missing composite subresponse",
                            limit_backoff=self.limit_backoff)
        if not result.ok:
            raise crm_error(result.status, result.body, limit_backoff=self.limit_backoff)
        return result

    def metadata(self) -> SfdcMetadataApi:
        """The Metadata API client, sending through our session (timeouts, counting)."""
        mdapi = self.call(lambda sf: sf.mdapi)
        # simple-salesforce builds zeep with zeep's own session, which has no timeout and
        # would bypass the call counter; point its transport at ours.
        transport = mdapi._client.transport
        transport.session = self._session
        transport.operation_timeout = self._timeout
        return mdapi
