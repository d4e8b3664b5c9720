"""Reward records: one per ``(referral, milestone)``, written so a retry never makes two.

- **Custom object** (Enterprise): a ``referral_reward`` record whose ``reward_key``
  (``referral_id:milestone``) is a unique property. The first write is a create with inline
  associations (referred contact, referrer, deal when known): one call, however many entries
  (``batch/create``). Not ``batch/upsert``: its inputs cannot carry associations, so a new
  reward would cost a second call to associate it. A retried create hits HubSpot's
  unique-value check (409 naming the existing id, or a per-input error in a 207) and becomes
  an update, by id or by ``reward_key`` as ``idProperty``; later state changes update by id.
  The milestone's referrer notice rides on the record (``referrer_notice``, written in the
  same request), so the reward and what the referrer was told are never written apart.
- **Fallback** (no custom objects): the deal's ``referral_reward_<milestone>_amount`` /
  ``_state`` / ``_notice`` properties, patched with ``referral_id`` as ``idProperty`` (one
  call). Before the deal exists the values wait in the memo and go out with the deal's
  creation; the local ledger is the system of record either way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from referral_sync.crm import CrmTask
from referral_sync.errors import CrmPermanentError
from referral_sync.hubspot.client import HubSpotClient, Reply
from referral_sync.hubspot.memo import Memo
from referral_sync.hubspot.records import writable
from referral_sync.hubspot.schema import RewardSchema, SchemaManager
from referral_sync.hubspot.translate import existing_id, is_conflict, is_not_found
from referral_sync.models import RewardEntry

log = logging.getLogger(__name__)


def notice_text(task: CrmTask) -> str:
    """A referrer notice as one property value: what the referrer was told."""
    return f"{task.subject}\n\n{task.description}".strip()


def reward_properties(entry: RewardEntry, notice: str | None = None,
                      notified_at: datetime | None = None) -> dict[str, str]:
    """The custom object's properties for a ledger entry (and its notice, if any)."""
    return writable({
        "reward_key": entry.key, "referral_id": entry.referral_id,
        "milestone": entry.milestone, "amount": entry.amount, "currency": entry.currency,
        "reward_type": entry.reward_type, "state": entry.state, "tier": entry.tier,
        "referrer_email": entry.referrer_email, "program": entry.program,
        "earned_at": entry.earned_at, "hold_until": entry.hold_until,
        "requires_approval": entry.requires_approval,
        **({"referrer_notice": notice, "referrer_notified_at": notified_at} if notice else {}),
    })


def deal_reward_properties(entry: RewardEntry, notice: str | None = None) -> dict[str, str]:
    """The fallback deal properties for a ledger entry (and its notice, if any)."""
    prefix = f"referral_reward_{entry.milestone.value}"
    return writable({f"{prefix}_amount": entry.amount, f"{prefix}_state": entry.state,
                     "referral_reward_currency": entry.currency,
                     **({f"{prefix}_notice": notice} if notice else {})})


class RewardWriter:
    """Writes ledger entries to whichever reward store the portal has."""

    def __init__(self, client: HubSpotClient, schema: SchemaManager, memo: Memo) -> None:
        self._client = client
        self._schema = schema
        self._memo = memo

    def upsert(self, entry: RewardEntry) -> str:
        """Create or update the entry's CRM record; returns its id (the deal id in the
        fallback, ``""`` while the deal does not exist yet)."""
        return self.write_many([entry])[entry.key]

    def write_many(self, entries: Sequence[RewardEntry],
                   notices: Mapping[str, str] | None = None) -> dict[str, str]:
        """Create or update every entry, with the referrer notice ``notices`` holds for its
        key (one call each for the creates and the updates in the usual case); returns the
        record ids by entry key."""
        if not entries:
            return {}
        notices = notices or {}
        reward = self._schema.reward_schema()
        if reward is None:
            return self._on_deal(entries, notices)
        now = self._client.now()
        props = {e.key: reward_properties(e, notices.get(e.key), now) for e in entries}
        out: dict[str, str] = {}
        fresh = [e for e in entries if not e.crm_id]
        known = {e.key: e for e in entries if e.crm_id}
        if known:
            out.update(self._update(reward, {k: (str(e.crm_id), props[k])
                                             for k, e in known.items()}, None))
            # Deleted in HubSpot since: create it again.
            fresh += [e for k, e in known.items() if k not in out]
        if fresh:
            out.update(self._create(reward, fresh, props))
        return out

    def _associations(self, reward: RewardSchema, referral_id: str) -> list[dict[str, Any]]:
        targets = [(reward.to_contacts, self._memo.linked(referral_id, "contact")),
                   (reward.to_contacts, self._memo.linked(referral_id, "referrer")),
                   (reward.to_deals, self._memo.linked(referral_id, "deal"))]
        return [{"to": {"id": record_id},
                 "types": [{"associationCategory": "USER_DEFINED",
                            "associationTypeId": type_id}]}
                for type_id, record_id in targets if type_id and record_id]

    def _create(self, reward: RewardSchema, entries: list[RewardEntry],
                props: dict[str, dict[str, str]]) -> dict[str, str]:
        inputs = [{"properties": props[e.key],
                   "associations": self._associations(reward, e.referral_id),
                   "objectWriteTraceId": e.key} for e in entries]
        out: dict[str, str] = {}
        try:
            if len(inputs) == 1:
                body = {k: v for k, v in inputs[0].items() if k != "objectWriteTraceId"}
                reply = self._client.call("rewards.create", self._client.objects.create,
                                          reward.object_type, body)
                out[entries[0].key] = str(reply.json()["id"])
            else:
                reply = self._client.call("rewards.batch_create", self._client.batch.create,
                                          reward.object_type, {"inputs": inputs})
                out.update(_by_key(reply))
        except CrmPermanentError as exc:
            if not is_conflict(exc):
                raise
            # Created before (a retried call, or another worker): update that one instead.
            found = existing_id(exc)
            if found and len(entries) == 1:
                key = entries[0].key
                out.update(self._update(reward, {key: (found, props[key])}, None))
        rest = {e.key: (e.key, props[e.key]) for e in entries if e.key not in out}
        if rest:
            out.update(self._update(reward, rest, "reward_key"))
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

    def _on_deal(self, entries: Sequence[RewardEntry],
                 notices: Mapping[str, str]) -> dict[str, str]:
        """The fallback: every entry's properties in one write to the referral's deal."""
        props: dict[str, str] = {}
        for entry in entries:
            props.update(deal_reward_properties(entry, notices.get(entry.key)))
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
            return {e.key: "" for e in entries}
        record_id = str(reply.json().get("id") or target)
        self._memo.link(referral_id, "deal", record_id)
        self._memo.seen(record_id, props)
        return {e.key: record_id for e in entries}


def _by_key(reply: Reply) -> dict[str, str]:
    """A batch answer's records by ``reward_key`` (answers need not follow input order);
    inputs that failed (listed under ``errors`` in a 207) are absent."""
    out = {}
    for result in reply.json().get("results", []):
        key = str((result.get("properties") or {}).get("reward_key")
                  or result.get("objectWriteTraceId") or "")
        if key:
            out[key] = str(result["id"])
    return out
