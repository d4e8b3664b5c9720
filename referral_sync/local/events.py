"""How the local CRM's records and change history map to referral statuses and events."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from referral_sync.local import tables as t
from referral_sync.models import ChangeEvent, CrmObject, ReferralStatus

#: Values of the lead's referral-status field (the AE's picklist) and what they mean.
LEAD_STATUS_FIELD = {
    "submitted": ReferralStatus.SUBMITTED,
    "qualified": ReferralStatus.QUALIFIED,
    "disqualified": ReferralStatus.DISQUALIFIED,
    "nurture": ReferralStatus.NURTURE,
}


def stage_status(stage: str) -> ReferralStatus:
    """The referral status an opportunity stage implies, from the stage's metadata."""
    is_closed, is_won = t.STAGES[stage]
    if is_won:
        return ReferralStatus.CLOSED_WON
    return ReferralStatus.CLOSED_LOST if is_closed else ReferralStatus.OPPORTUNITY


def snapshot_status(lead: Any, opp: Any | None) -> ReferralStatus:
    """The referral status the lead and its converted opportunity show right now."""
    if opp is not None:
        return stage_status(opp.stage)
    if lead.is_converted:
        return ReferralStatus.OPPORTUNITY
    return LEAD_STATUS_FIELD.get(lead.referral_status or "submitted", ReferralStatus.SUBMITTED)


def _status_for(row: Any) -> ReferralStatus | None:
    if row.field == "referral_status":
        return LEAD_STATUS_FIELD.get(row.new_value)
    if row.field == "converted":
        return ReferralStatus.OPPORTUNITY
    if row.field == "stage":
        return stage_status(row.new_value)
    return None


def change_events(rows: Iterable[Any]) -> Iterator[ChangeEvent]:
    """One normalised event per change-history row; ``event_id`` is the row's sequence."""
    for row in rows:
        yield ChangeEvent(
            provider="local",
            event_id=f"change-{row.seq}",
            object_type=CrmObject(row.object_type),
            record_id=row.record_id,
            occurred_at=row.at,
            referral_id=row.referral_id,
            status=_status_for(row),
            fields={row.field: row.new_value},
        )
