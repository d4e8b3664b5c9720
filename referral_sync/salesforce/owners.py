"""Owners on Salesforce: users and queues named by id, ``email:<address>`` or ``queue:<name>``.

Which user or queue a ref names hardly ever changes, so that identity is kept for a day
(names resolve in one call for all refs of a policy). Whether a user is still active does
change, so an intake re-reads every owner it may route to by id, inside its own Composite
call (``status_subrequests``): by-id retrieves are not among the five queries a Composite
may hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from referral_sync.crm import Owner
from referral_sync.salesforce import queries
from referral_sync.salesforce.client import SalesforceClient, SubRequest, SubResult, query_path
from referral_sync.salesforce.records import owner as owner_of
from referral_sync.salesforce.ttl import TtlCache

IDENTITY_TTL = timedelta(hours=24)
OWNER_TTL = timedelta(minutes=10)
_FIELDS = {"User": "Id,Name,Email,IsActive", "Group": "Id,Name,Email"}


class OwnerBook:
    """Owner look-ups with a memo of identities (day) and of whole owners (minutes)."""

    def __init__(self, client: SalesforceClient, clock: Callable[[], datetime]) -> None:
        self._client = client
        self._ids: TtlCache[str | None] = TtlCache(clock, IDENTITY_TTL)
        self._owners: TtlCache[Owner | None] = TtlCache(clock, OWNER_TTL)

    def _known_id(self, ref: str) -> tuple[bool, str | None]:
        """``(True, id)`` when the ref's identity is known (``id`` None: no such owner)."""
        if queries.RECORD_ID.match(ref):
            return True, ref
        if not ref.startswith(("email:", "queue:")):
            return True, None
        return self._ids.get(ref)

    def remember(self, ref: str, owner: Owner | None) -> None:
        """Keep what the CRM said about ``ref``."""
        self._owners.put(ref, owner)
        if not queries.RECORD_ID.match(ref):
            self._ids.put(ref, owner.id if owner else None)

    def get(self, ref: str) -> Owner | None:
        """A user or queue by ref (one query unless memoised)."""
        fresh, owner = self._owners.get(ref)
        if fresh:
            return owner
        try:
            soql = queries.owner_query(ref)
        except ValueError:
            return None
        found = self._client.query(soql)
        found.sort(key=lambda r: r.get("IsActive") is False)
        owner = owner_of(found[0]) if found else None
        self.remember(ref, owner)
        return owner

    def unresolved(self, refs: Iterable[str]) -> list[str]:
        """The ``email:``/``queue:`` refs whose user or queue is not known yet."""
        return sorted(r for r in set(refs) if not self._known_id(r)[0])

    def learn_names(self, unknown: Iterable[str], soql: Mapping[str, str],
                    results: Mapping[str, SubResult]) -> dict[str, Owner | None]:
        """Remember what the ``queries.owner_names_queries`` found, by ref."""
        rows = [row for ref in soql for row in self._client.raise_for(
            results.get(ref)).records()]
        rows.sort(key=lambda r: r.get("IsActive") is False)  # an active user wins the e-mail
        out = {}
        for ref in unknown:
            name = ref.partition(":")[2].lower()
            match = next((r for r in rows if name in _names(ref, r)), None)
            out[ref] = owner_of(match) if match else None
            self.remember(ref, out[ref])
        return out

    def resolve_names(self, refs: Iterable[str]) -> None:
        """Learn which users and queues the unresolved refs name, in one call (none when
        all are known)."""
        unknown = self.unresolved(refs)
        soql = queries.owner_names_queries(unknown)
        if soql:
            subs = [SubRequest(ref, "GET", query_path(q)) for ref, q in soql.items()]
            self._client.composite(subs, lambda results: self.learn_names(unknown, soql,
                                                                          results))

    def status_subrequests(self, refs: Iterable[str]) -> dict[str, tuple[str, SubRequest]]:
        """By-id retrieves of every owner whose identity is known, by subrequest ref."""
        out: dict[str, tuple[str, SubRequest]] = {}
        for n, ref in enumerate(sorted(set(refs))):
            known, record_id = self._known_id(ref)
            if known and record_id:
                sobject = "Group" if record_id.startswith("00G") else "User"
                out[f"owner{n}"] = (ref, SubRequest(
                    f"owner{n}", "GET", f"sobjects/{sobject}/{record_id}?fields="
                    f"{_FIELDS[sobject]}"))
        return out

    def read_statuses(self, pending: Mapping[str, tuple[str, SubRequest]],
                      results: Mapping[str, SubResult]) -> dict[str, Owner | None]:
        """The owners the ``status_subrequests`` read, by owner ref (None: gone)."""
        out: dict[str, Owner | None] = {}
        for sub_ref, (ref, _) in pending.items():
            result = results.get(sub_ref)
            if result is not None and result.status == 404:
                owner = None
            else:
                body = self._client.raise_for(result).body
                owner = owner_of(body) if isinstance(body, Mapping) else None
            self.remember(ref, owner)
            out[ref] = owner
        return out


def _names(ref: str, row: Mapping[str, Any]) -> set[str]:
    queue = str(row.get("Id", "")).startswith("00G")
    if ref.startswith("email:") and not queue:
        return {str(row.get("Email") or "").lower()}
    if ref.startswith("queue:") and queue:
        return {str(row.get(k) or "").lower() for k in ("Name", "DeveloperName")}
    return set()
