"""A small time-bounded memo, so one intake does not ask Salesforce the same thing twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """Values kept for ``ttl`` by the injected clock; at most ``size`` entries."""

    def __init__(self, clock: Callable[[], datetime], ttl: timedelta, size: int = 1000) -> None:
        self._clock = clock
        self._ttl = ttl
        self._size = size
        self._items: dict[str, tuple[datetime, V]] = {}

    def get(self, key: str) -> tuple[bool, V | None]:
        """``(True, value)`` while fresh, ``(False, None)`` otherwise."""
        item = self._items.get(key)
        if item is None or item[0] <= self._clock():
            self._items.pop(key, None)
            return False, None
        return True, item[1]

    def put(self, key: str, value: V) -> None:
        """Remember ``value``; the oldest entry goes when full."""
        if len(self._items) >= self._size:
            self._items.pop(next(iter(self._items)))
        self._items[key] = (self._clock() + self._ttl, value)
