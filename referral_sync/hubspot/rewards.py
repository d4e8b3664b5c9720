"""Reward records: one per ``(referral, milestone)``, written so a retry never makes two.

- **Custom object** (Enterprise): a ``referral_reward`` record whose ``reward_key``
  (``referral_id:milestone``) is a unique property. The first write is a create with inline
  associations (referred contact, referrer, deal when known): one call. A retried create hits
  HubSpot's unique-value check (409 naming the existing id) and becomes an update; later
  state changes update by id, or by ``reward_key`` as ``idProperty``.
- **Fallback** (no custom objects): the deal's ``referral_reward_<milestone>_amount`` /
  ``_state`` properties, patched with ``referral_id`` as ``idProperty`` (one call). Before the
  deal exists the values wait in the memo and go out with the deal's creation; the local
  ledger is the system of record either way.
"""

from __future__ import annotations

import logging
from typing import Any

from referral_sync.errors import CrmPermanentError
from referral_sync.hubspot.client import HubSpotClient
from referral_sync.hubspot.memo import Memo
from referral_sync.hubspot.records import writable
from referral_sync.hubspot.schema import RewardSchema, SchemaManager
from referral_sync.hubspot.translate import existing_id, is_conflict, is_not_found
from referral_sync.models import RewardEntry

log = logging.getLogger(__name__)


def reward_properties(entry: RewardEntry) -> dict[str, str]:
    """The custom object's properties for a ledger entry."""
    return writable({
        "reward_key": entry.key, "referral_id": entry.referral_id,
        "milestone": entry.milestone, "amount": entry.amount, "currency": entry.currency,
        "reward_type": entry.reward_type, "state": entry.state, "tier": entry.tier,
        "referrer_email": entry.referrer_email, "program": entry.program,
        "earned_at": entry.earned_at, "hold_until": entry.hold_until,
        "requires_approval": entry.requires_approval,
    })


def deal_reward_properties(entry: RewardEntry) -> dict[str, str]:
    """The fallback deal properties for a ledger entry."""
    prefix = f"referral_reward_{entry.milestone.value}"
    return writable({f"{prefix}_amount": entry.amount, f"{prefix}_state": entry.state,
                     "referral_reward_currency": entry.currency})


class RewardWriter:
    """Writes ledger entries to whichever reward store the portal has."""

    def __init__(self, client: HubSpotClient, schema: SchemaManager, memo: Memo) -> None:
        self._client = client
        self._schema = schema
        self._memo = memo

    def upsert(self, entry: RewardEntry) -> str:
        """Create or update the entry's CRM record; returns its id (the deal id in the
        fallback, ``""`` while the deal does not exist yet)."""
        reward = self._schema.reward_schema()
        if reward is None:
            return self._on_deal(entry)
        if entry.crm_id:
            try:
                return self._update(reward, entry.crm_id, reward_properties(entry), None)
            except CrmPermanentError as exc:
                if not is_not_found(exc):
                    raise
        return self._create(reward, entry)

    def _associations(self, reward: RewardSchema, referral_id: str) -> list[dict[str, Any]]:
        targets = [(reward.to_contacts, self._memo.linked(referral_id, "contact")),
                   (reward.to_contacts, self._memo.linked(referral_id, "referrer")),
                   (reward.to_deals, self._memo.linked(referral_id, "deal"))]
        return [{"to": {"id": record_id},
                 "types": [{"associationCategory": "USER_DEFINED",
                            "associationTypeId": type_id}]}
                for type_id, record_id in targets if type_id and record_id]

    def _create(self, reward: RewardSchema, entry: RewardEntry) -> str:
        props = reward_properties(entry)
        body = {"properties": props,
                "associations": self._associations(reward, entry.referral_id)}
        try:
            reply = self._client.call("rewards.create", self._client.objects.create,
                                      reward.object_type, body)
        except CrmPermanentError as exc:
            if not is_conflict(exc):
                raise
            # Created before (a retried call, or another worker): update that one instead.
            return self._update(reward, existing_id(exc) or entry.key, props,
                                None if existing_id(exc) else "reward_key")
        return str(reply.json()["id"])

    def _update(self, reward: RewardSchema, record: str, props: dict[str, str],
                id_property: str | None) -> str:
        kwargs = {"id_property": id_property} if id_property else {}
        reply = self._client.call("rewards.update", self._client.objects.update,
                                  reward.object_type, record, {"properties": props}, **kwargs)
        return str(reply.json().get("id") or record)

    def _on_deal(self, entry: RewardEntry) -> str:
        props = deal_reward_properties(entry)
        deal_id = self._memo.linked(entry.referral_id, "deal")
        target, kwargs = (deal_id, {}) if deal_id else (entry.referral_id,
                                                        {"id_property": "referral_id"})
        try:
            reply = self._client.call("deals.update_reward", self._client.objects.update,
                                      "deals", target, {"properties": props}, **kwargs)
        except CrmPermanentError as exc:
            if not is_not_found(exc):
                raise
            log.info("reward kept for the deal that does not exist yet",
                     extra={"referral_id": entry.referral_id})
            self._memo.stash(entry.referral_id, props)
            return ""
        record_id = str(reply.json().get("id") or target)
        self._memo.link(entry.referral_id, "deal", record_id)
        self._memo.seen(record_id, props)
        return record_id
