"""HubSpot CRM search: a client-side rate limit, filter helpers and streaming past the cap.

Search limits (search guide): 5 requests/s per account (search has its own limit and its
answers carry no rate-limit headers, so we pace ourselves), at most 200 results per page,
5 filter groups x 6 filters (18 in total), one sort rule, and **no more than 10,000 results
per query**: asking for a page past that is a 400. :meth:`Searcher.stream` gets past the cap
by *re-anchoring*: before the next page would cross it, it starts a new query at the newest
timestamp seen, skipping the records at that timestamp it has already yielded. If 10,000
records share one timestamp it walks them by ``hs_object_id`` instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from referral_sync.hubspot.client import HubSpotClient
from referral_sync.hubspot.records import to_millis

PAGE = 200
CAP = 10_000
Filter = dict[str, Any]


class RateLimiter:
    """Spaces calls at least ``1 / per_second`` apart (thread-safe)."""

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = float("-inf")

    def acquire(self) -> None:
        """Wait for the next free slot."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


def eq(prop: str, value: object) -> Filter:
    """``prop == value`` (strings compare case-insensitively in HubSpot)."""
    return {"propertyName": prop, "operator": "EQ", "value": str(value)}


def op(prop: str, operator: str, value: object | None = None) -> Filter:
    """Any single-value operator (``GTE``, ``LT``, ``HAS_PROPERTY``, ``CONTAINS_TOKEN``, …)."""
    flt: Filter = {"propertyName": prop, "operator": operator}
    if value is not None:
        flt["value"] = str(value)
    return flt


def _ts(record: dict[str, Any], prop: str) -> int:
    value = to_millis((record.get("properties") or {}).get(prop))
    return value if value is not None else 0


class Searcher:
    """Runs searches for one object type at a time, paced by a shared limiter."""

    def __init__(self, client: HubSpotClient, limiter: RateLimiter) -> None:
        self._client = client
        self._limiter = limiter

    def page(self, object_type: str, groups: list[list[Filter]], properties: list[str], *,
             limit: int = PAGE, after: str | None = None,
             sort: tuple[str, str] | None = None) -> dict[str, Any]:
        """One page of results (``{"total", "results", "paging"}``)."""
        body: dict[str, Any] = {
            "filterGroups": [{"filters": g} for g in groups],
            "properties": properties, "limit": min(limit, PAGE),
        }
        if sort:
            body["sorts"] = [{"propertyName": sort[0], "direction": sort[1]}]
        if after:
            body["after"] = after
        self._limiter.acquire()
        reply = self._client.call(f"{object_type}.search", self._client.search_api.do_search,
                                  object_type, body)
        return reply.json()

    def first(self, object_type: str, groups: list[list[Filter]], properties: list[str],
              limit: int = 20) -> list[dict[str, Any]]:
        """The first ``limit`` matches."""
        return list(self.page(object_type, groups, properties, limit=limit).get("results", []))

    def stream(self, object_type: str, ts_prop: str, filters: list[Filter],
               properties: list[str], since_ms: int, until_ms: int) -> Iterator[dict[str, Any]]:
        """Every record matching ``filters`` with ``since_ms <= ts_prop <= until_ms``, oldest
        first, any number of them, never holding more than one page in memory."""
        props = sorted({*properties, ts_prop, "hs_object_id"})
        anchor, skip = since_ms, set[str]()
        while True:
            groups = [[*filters, op(ts_prop, "GTE", anchor), op(ts_prop, "LTE", until_ms)]]
            last, at_last, complete = anchor, set(skip), True
            after: str | None = None
            while True:
                data = self.page(object_type, groups, props, after=after,
                                 sort=(ts_prop, "ASCENDING"))
                for record in data.get("results", []):
                    ts, rid = _ts(record, ts_prop), str(record.get("id"))
                    if ts == anchor and rid in skip:
                        continue
                    yield record
                    if ts != last:
                        last, at_last = ts, set()
                    at_last.add(rid)
                after = ((data.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
                if int(after) + PAGE > CAP:
                    complete = False
                    break
            if complete:
                return
            if last == anchor:
                # A whole query window at one timestamp: walk it by id, then move past it.
                yield from self._walk_equal(object_type, ts_prop, filters, props, anchor,
                                            at_last)
                anchor, skip = anchor + 1, set()
            else:
                anchor, skip = last, at_last

    def _walk_equal(self, object_type: str, ts_prop: str, filters: list[Filter],
                    props: list[str], ts: int, seen: set[str]) -> Iterator[dict[str, Any]]:
        last_id = 0
        while True:
            groups = [[*filters, op(ts_prop, "EQ", ts), op("hs_object_id", "GT", last_id)]]
            data = self.page(object_type, groups, props, sort=("hs_object_id", "ASCENDING"))
            results = data.get("results", [])
            for record in results:
                last_id = max(last_id, int(record["id"]))
                if str(record["id"]) not in seen:
                    yield record
            if not (data.get("paging") or {}).get("next"):
                return
