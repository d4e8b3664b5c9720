"""Polling reconcile: referral contacts and deals changed since a cursor, as ChangeEvents.

Contacts are filtered on ``lastmodifieddate``, deals on ``hs_lastmodifieddate`` (HubSpot's
search guide: contacts use the former, companies and deals the latter). The upper bound is
``now - index_lag`` because search "may take a few moments" to show a write; the caller's
cursor overlap covers the rest. Both streams are read page by page (200 per call, past the
10,000-result cap by re-anchoring) and merged by time, so memory stays flat however many
records changed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from referral_sync.crm import parse_decimal
from referral_sync.hubspot.pipelines import PipelineCache
from referral_sync.hubspot.records import (
    CONTACT_READ,
    DEAL_READ,
    props_of,
    to_datetime,
    to_millis,
)
from referral_sync.hubspot.search import Searcher, op
from referral_sync.hubspot.translate import PROVIDER
from referral_sync.models import ChangeEvent, CrmObject, ReferralStatus

_CONTACT_FIELDS = ("referral_status", "hubspot_owner_id", "referral_disqualified_reason")
_DEAL_FIELDS = ("dealstage", "pipeline", "amount", "hubspot_owner_id")


def _contact_event(record: dict[str, Any]) -> ChangeEvent:
    props = props_of(record)
    modified = to_datetime(props.get("lastmodifieddate"))
    assert modified is not None
    try:
        status = ReferralStatus(props.get("referral_status") or "")
    except ValueError:
        status = None
    return ChangeEvent(
        provider=PROVIDER, object_type=CrmObject.CONTACT, record_id=str(record["id"]),
        event_id=f"poll:contact:{record['id']}:{to_millis(modified)}", occurred_at=modified,
        referral_id=props.get("referral_id") or None, status=status,
        reason=props.get("referral_disqualified_reason") or None,
        fields={"source": "reconcile", **{k: props.get(k) for k in _CONTACT_FIELDS}},
    )


def _deal_event(record: dict[str, Any], pipelines: PipelineCache) -> ChangeEvent:
    props = props_of(record)
    modified = to_datetime(props.get("hs_lastmodifieddate"))
    assert modified is not None
    return ChangeEvent(
        provider=PROVIDER, object_type=CrmObject.DEAL, record_id=str(record["id"]),
        event_id=f"poll:deal:{record['id']}:{to_millis(modified)}", occurred_at=modified,
        referral_id=props.get("referral_id") or None, status=pipelines.status_of(props),
        amount=parse_decimal(props.get("amount")),
        fields={"source": "reconcile", **{k: props.get(k) for k in _DEAL_FIELDS}},
    )


def list_changes(searcher: Searcher, pipelines: PipelineCache, since: datetime,
                 now: datetime, *, index_lag: timedelta) -> Iterator[ChangeEvent]:
    """Referral contacts and deals modified in ``[since, now - index_lag]``, oldest first."""
    since_ms, until_ms = to_millis(since) or 0, to_millis(now - index_lag) or 0
    if until_ms < since_ms:
        return
    contacts = (
        _contact_event(r) for r in searcher.stream(
            "contacts", "lastmodifieddate", [op("referral_id", "HAS_PROPERTY")],
            CONTACT_READ, since_ms, until_ms))
    deals = (
        _deal_event(r, pipelines) for r in searcher.stream(
            "deals", "hs_lastmodifieddate", [op("referral_id", "HAS_PROPERTY")],
            DEAL_READ, since_ms, until_ms))
    yield from heapq.merge(contacts, deals, key=lambda e: e.occurred_at)
