"""Reward records: one per ``(referral, milestone)``, written so a retry never makes two.

- **Custom object** (Enterprise): a ``referral_reward`` record whose ``reward_key``
  (``referral_id:milestone``) is a unique property. The first write is a create with inline
  associations (referred contact, referrer, deal when known): one call, however many entries
  (``batch/create``). Not ``batch/upsert``: its inputs cannot carry associations, so a new
  reward would cost a second call to associate it. A retried create hits HubSpot's
  unique-value check (409 naming the existing id, or a per-input error in a 207) and becomes
  an update, by id or by ``reward_key`` as ``idProperty``; later state changes update by id.
  Whether a reward was *new* in a call is reported: nothing keyed to a reward that did not
  exist before the call (its milestone's notice) can exist in HubSpot either.
- **Fallback** (no custom objects): the deal's ``referral_reward_<milestone>_amount`` /
  ``_state`` properties, patched with ``referral_id`` as ``idProperty`` (one call). Before the
  deal exists the values wait in the memo and go out with the deal's creation; the local
  ledger is the system of record either way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from referral_sync.errors import CrmPermanentError
from referral_sync.hubspot.client import HubSpotClient, Reply
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


@dataclass(frozen=True)
class Written:
    """Where a ledger entry went: its record id, and whether this call created it."""

    record_id: str
    new: bool = False


class RewardWriter:
    """Writes ledger entries to whichever reward store the portal has."""

    def __init__(self, client: HubSpotClient, schema: SchemaManager, memo: Memo) -> None:
        self._client = client
        self._schema = schema
        self._memo = memo

    def upsert(self, entry: RewardEntry) -> str:
        """Create or update the entry's CRM record; returns its id (the deal id in the
        fallback, ``""`` while the deal does not exist yet)."""
        return self.write_many([entry])[entry.key].record_id

    def write_many(self, entries: Sequence[RewardEntry]) -> dict[str, Written]:
        """Create or update every entry (one call each for the creates and the updates in
        the usual case); returns what was written, by entry key."""
        if not entries:
            return {}
        reward = self._schema.reward_schema()
        if reward is None:
            return self._on_deal(entries)
        out: dict[str, Written] = {}
        fresh = [e for e in entries if not e.crm_id]
        known = {e.key: e for e in entries if e.crm_id}
        if known:
            updated = self._update(reward, {e.key: (str(e.crm_id), reward_properties(e))
                                            for e in known.values()}, None)
            out.update({k: Written(v) for k, v in updated.items()})
            # Deleted in HubSpot since: create it again.
            fresh += [e for k, e in known.items() if k not in updated]
        if fresh:
            out.update(self._create(reward, fresh))
        return out

    def _associations(self, reward: RewardSchema, referral_id: str) -> list[dict[str, Any]]:
        targets = [(reward.to_contacts, self._memo.linked(referral_id, "contact")),
                   (reward.to_contacts, self._memo.linked(referral_id, "referrer")),
                   (reward.to_deals, self._memo.linked(referral_id, "deal"))]
        return [{"to": {"id": record_id},
                 "types": [{"associationCategory": "USER_DEFINED",
                            "associationTypeId": type_id}]}
                for type_id, record_id in targets if type_id and record_id]

    def _create(self, reward: RewardSchema, entries: list[RewardEntry]) -> dict[str, Written]:
        inputs = [{"properties": reward_properties(e),
                   "associations": self._associations(reward, e.referral_id),
                   "objectWriteTraceId": e.key} for e in entries]
        out: dict[str, Written] = {}
        try:
            if len(inputs) == 1:
                body = {k: v for k, v in inputs[0].items() if k != "objectWriteTraceId"}
                reply = self._client.call("rewards.create", self._client.objects.create,
                                          reward.object_type, body)
                out[entries[0].key] = Written(str(reply.json()["id"]), new=True)
            else:
                reply = self._client.call("rewards.batch_create", self._client.batch.create,
                                          reward.object_type, {"inputs": inputs})
                out.update(_by_key(reply, new=True))
        except CrmPermanentError as exc:
            if not is_conflict(exc):
                raise
            # Created before (a retried call, or another worker): update that one instead.
            found = existing_id(exc)
            if found and len(entries) == 1:
                out.update({k: Written(v) for k, v in self._update(reward, {entries[0].key: (
                    found, reward_properties(entries[0]))}, None).items()})
        rest = {e.key: (e.key, reward_properties(e)) for e in entries if e.key not in out}
        if rest:
            updated = self._update(reward, rest, "reward_key")
            out.update({k: Written(v) for k, v in updated.items()})
        missing = sorted(set(rest) - set(out))
        if missing:
            raise CrmPermanentError(f"HubSpot rewards: could neither create nor update "
                                    f"{', '.join(missing)}", provider="hubspot",
                                    code="PARTIAL_FAILURE")
        return out

    def _update(self, reward: RewardSchema, records: dict[str, tuple[str, dict[str, str]]],
                id_property: str | None) -> dict[str, str]:
        """Update ``{entry key: (record id or reward_key, properties)}``; returns the ids of
        the records updated (those that no longer exist are left out)."""
        if len(records) == 1:
            [(key, (record, props))] = records.items()
            kwargs = {"id_property": id_property} if id_property else {}
            try:
                reply = self._client.call("rewards.update", self._client.objects.update,
                                          reward.object_type, record, {"properties": props},
                                          **kwargs)
            except CrmPermanentError as exc:
                if is_not_found(exc):
                    return {}
                raise
            return {key: str(reply.json().get("id") or record)}
        inputs = [{"id": record, "properties": props,
                   **({"idProperty": id_property} if id_property else {})}
                  for record, props in records.values()]
        reply = self._client.call("rewards.batch_update", self._client.batch.update,
                                  reward.object_type, {"inputs": inputs})
        by_record = {record: key for key, (record, _) in records.items()}
        out = {}
        for result in reply.json().get("results", []):
            key = by_record.get(str(result.get("id"))) or str(
                (result.get("properties") or {}).get("reward_key") or "")
            if key in records:
                out[key] = str(result["id"])
        return out

    def _on_deal(self, entries: Sequence[RewardEntry]) -> dict[str, Written]:
        """The fallback: every entry's properties in one write to the referral's deal."""
        props: dict[str, str] = {}
        for entry in entries:
            props.update(deal_reward_properties(entry))
        referral_id = entries[0].referral_id
        deal_id = self._memo.linked(referral_id, "deal")
        target, kwargs = (deal_id, {}) if deal_id else (referral_id,
                                                        {"id_property": "referral_id"})
        try:
            reply = self._client.call("deals.update_reward", self._client.objects.update,
                                      "deals", target, {"properties": props}, **kwargs)
        except CrmPermanentError as exc:
            if not is_not_found(exc):
                raise
            log.info("reward kept for the deal that does not exist yet",
                     extra={"referral_id": referral_id})
            self._memo.stash(referral_id, props)
            return {e.key: Written("") for e in entries}
        record_id = str(reply.json().get("id") or target)
        self._memo.link(referral_id, "deal", record_id)
        self._memo.seen(record_id, props)
        return {e.key: Written(record_id) for e in entries}


def _by_key(reply: Reply, *, new: bool = False) -> dict[str, Written]:
    """A batch answer's records by ``reward_key`` (answers need not follow input order);
    inputs that failed (listed under ``errors`` in a 207) are absent."""
    out = {}
    for result in reply.json().get("results", []):
        key = str((result.get("properties") or {}).get("reward_key")
                  or result.get("objectWriteTraceId") or "")
        if key:
            out[key] = Written(str(result["id"]), new=new)
    return out
