"""What this process last saw of each referral's HubSpot records (bounded, in memory).

It saves calls, never correctness: a miss costs a read or a write that would have been made
anyway. It remembers which contact and deal belong to a referral (so rewards can be
associated and deals read directly), and the property values last read or written per
record (so ``update_referral`` sends only what changed, and skips the call when nothing
did). Several processes each keep their own; a stale value only ever causes an extra write.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class Memo:
    """A small LRU of referral → record ids and record → property values."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._ids: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._props: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._pending: dict[str, dict[str, str]] = {}

    def _trim(self, table: OrderedDict[Any, Any]) -> None:
        while len(table) > self._size:
            table.popitem(last=False)

    def link(self, referral_id: str, role: str, record_id: str | None) -> None:
        """Remember the ``role`` (``contact``, ``deal``, ``referrer``) record of a referral."""
        if not record_id:
            return
        with self._lock:
            self._ids[(referral_id, role)] = record_id
            self._ids.move_to_end((referral_id, role))
            self._trim(self._ids)

    def linked(self, referral_id: str, role: str) -> str | None:
        """The remembered ``role`` record id, if any."""
        with self._lock:
            return self._ids.get((referral_id, role))

    def seen(self, record_id: str, props: dict[str, Any]) -> None:
        """Record property values as HubSpot now holds them."""
        with self._lock:
            known = self._props.setdefault(record_id, {})
            known.update({k: "" if v is None else str(v) for k, v in props.items()})
            self._props.move_to_end(record_id)
            self._trim(self._props)

    def changed(self, record_id: str, props: dict[str, str]) -> dict[str, str]:
        """The subset of ``props`` that differs from what HubSpot is known to hold."""
        with self._lock:
            known = self._props.get(record_id, {})
        return {k: v for k, v in props.items() if known.get(k) != v}

    def forget(self, record_id: str) -> None:
        """Drop what we knew of a record (it was deleted, or a write failed half-way)."""
        with self._lock:
            self._props.pop(record_id, None)

    def stash(self, referral_id: str, props: dict[str, str]) -> None:
        """Keep deal properties to write once the referral's deal exists."""
        with self._lock:
            self._pending.setdefault(referral_id, {}).update(props)

    def take_stash(self, referral_id: str) -> dict[str, str]:
        """The stashed deal properties of a referral, removed from the stash."""
        with self._lock:
            return self._pending.pop(referral_id, {})
