"""HubSpot owners: the ids that go into ``hubspot_owner_id``.

``hubspot_owner_id`` holds the owner's ``id`` from ``/crm/v3/owners``, **not** its ``userId``
(HubSpot's owners guide: using a user id "will result in an error"). References are resolved
from a cached owner list: an owner id, ``email:<address>``, ``userId:<id>`` (translated to the
owner id) or ``queue:<name>``. HubSpot has no assignable queues for contacts and deals, so a
queue that is not a ``QUEUE``-type owner becomes an unassigned placeholder: the record is
written without an owner and the portal's own "rotate record to owner" workflow (running
"only if no owner") takes over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from referral_sync.crm import Owner
from referral_sync.errors import CrmPermanentError
from referral_sync.hubspot.client import HubSpotClient
from referral_sync.hubspot.translate import is_not_found
from referral_sync.models import OwnerKind

QUEUE_PREFIX = "queue:"


def _owner(raw: dict[str, Any], *, active: bool = True) -> Owner:
    name = f"{raw.get('firstName') or ''} {raw.get('lastName') or ''}".strip()
    return Owner(
        id=str(raw["id"]), name=name or str(raw.get("email") or raw["id"]),
        kind=OwnerKind.QUEUE if raw.get("type") == "QUEUE" else OwnerKind.USER,
        email=raw.get("email"), active=active and not raw.get("archived", False),
    )


class OwnerDirectory:
    """Owners by id, e-mail, user id and queue name; the list is read once per ``ttl``."""

    def __init__(self, client: HubSpotClient, *, ttl: float = 900.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._ttl = ttl
        self._monotonic = monotonic
        self._owners: list[tuple[Owner, str]] = []
        self._extra: dict[str, Owner | None] = {}
        self._loaded_at: float | None = None

    def _load(self) -> None:
        owners: list[tuple[Owner, str]] = []
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": 100, "archived": False}
            if after:
                kwargs["after"] = after
            data = self._client.call("owners.get_page", self._client.owners.get_page,
                                     **kwargs).json()
            owners += [(_owner(r), str(r.get("userId") or "")) for r in data.get("results", [])]
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        self._owners, self._extra = owners, {}
        self._loaded_at = self._monotonic()

    def _list(self) -> list[tuple[Owner, str]]:
        if self._loaded_at is None or self._monotonic() - self._loaded_at > self._ttl:
            self._load()
        return self._owners

    def get(self, ref: str) -> Owner | None:
        """The owner ``ref`` names, or None. Deactivated users come back inactive."""
        ref = ref.strip()
        owners = self._list()
        if ref.startswith(QUEUE_PREFIX):
            name = ref[len(QUEUE_PREFIX):].strip()
            queues = [o for o, _ in owners if o.kind is OwnerKind.QUEUE]
            found = next((o for o in queues if o.name.casefold() == name.casefold()), None)
            return found or Owner(id=ref, name=name, kind=OwnerKind.QUEUE)
        if ref.startswith("email:"):
            address = ref[6:].strip().casefold()
            return next((o for o, _ in owners if (o.email or "").casefold() == address), None)
        if ref.startswith("userId:"):
            user = ref[7:].strip()
            return next((o for o, uid in owners if uid == user), None)
        found = next((o for o, _ in owners if o.id == ref), None)
        return found if found is not None else self._archived(ref)

    def _archived(self, owner_id: str) -> Owner | None:
        if owner_id in self._extra:
            return self._extra[owner_id]
        owner: Owner | None = None
        if owner_id.isdigit():
            try:
                raw = self._client.call("owners.get_by_id", self._client.owners.get_by_id,
                                        owner_id, id_property="id", archived=True).json()
                owner = _owner(raw, active=False)
            except CrmPermanentError as exc:
                if not is_not_found(exc):
                    raise
        self._extra[owner_id] = owner
        return owner

    def owner_id(self, ref: str | None) -> str | None:
        """The value for ``hubspot_owner_id``, or None (write no owner) for placeholders,
        unknown references and deactivated users, which HubSpot refuses as owners."""
        if not ref:
            return None
        owner = self.get(ref)
        if owner is None or not owner.active or owner.id.startswith(QUEUE_PREFIX):
            return None
        return owner.id
