"""Re-reading a referral's HubSpot records when an event arrives (events carry one property
and may be stale): its deal once it has one (one read), else its contact with its deal
associations (one read; one more when the AE has associated deals by hand)."""

from __future__ import annotations

from typing import Any

from referral_sync.crm import ReferralSnapshot, parse_decimal
from referral_sync.errors import CrmPermanentError, NotFound
from referral_sync.hubspot import records as rec
from referral_sync.hubspot.client import HubSpotClient
from referral_sync.hubspot.memo import Memo
from referral_sync.hubspot.pipelines import PipelineCache
from referral_sync.hubspot.translate import is_not_found
from referral_sync.models import Referral


class ReferralReader:
    """Reads a referral's current state from its contact or deal."""

    def __init__(self, client: HubSpotClient, memo: Memo, pipelines: PipelineCache) -> None:
        self._client = client
        self._memo = memo
        self._pipelines = pipelines

    def read(self, referral: Referral) -> ReferralSnapshot:
        """The referral's current state: its deal's stage once it has a deal, else the
        contact's ``referral_status`` as the AE set it.

        Raises:
            NotFound: the contact was deleted.
        """
        contact_id = referral.crm_record_id or self._memo.linked(referral.id, "contact")
        if not contact_id:
            raise NotFound(f"referral {referral.id} has no HubSpot contact")
        deal_id = referral.crm_opportunity_id or self._memo.linked(referral.id, "deal")
        deal = self.get("deals", deal_id, rec.DEAL_READ) if deal_id else None
        if deal is not None:
            return self._deal_snapshot(referral, contact_id, deal)
        contact = self.get("contacts", contact_id, rec.CONTACT_READ, associations=["deals"])
        if contact is None:
            raise NotFound(f"HubSpot contact {contact_id} no longer exists")
        props = rec.props_of(contact)
        self._memo.seen(contact_id, props)
        linked = ((contact.get("associations") or {}).get("deals") or {}).get("results", [])
        deals = self._read_deals(sorted({str(d["id"]) for d in linked}))
        if deals:
            mine = [d for d in deals if rec.props_of(d).get("referral_id") == referral.id]
            return self._deal_snapshot(referral, contact_id, (mine or deals)[0])
        touched = props.get("notes_last_contacted") or props.get(
            "hs_last_sales_activity_timestamp")
        return ReferralSnapshot(
            referral_id=referral.id, record_id=contact_id,
            status=rec.status_from(props.get("referral_status"), referral.status),
            owner_id=props.get("hubspot_owner_id") or None,
            disqualified_reason=props.get("referral_disqualified_reason") or None,
            touched=bool(touched))

    def _deal_snapshot(self, referral: Referral, contact_id: str,
                       deal: dict[str, Any]) -> ReferralSnapshot:
        props, deal_id = rec.props_of(deal), str(deal["id"])
        self._memo.link(referral.id, "deal", deal_id)
        self._memo.seen(deal_id, props)
        return ReferralSnapshot(
            referral_id=referral.id, record_id=contact_id,
            status=self._pipelines.status_of(props), opportunity_id=deal_id,
            owner_id=props.get("hubspot_owner_id") or None,
            amount=parse_decimal(props.get("amount")), touched=True)

    def get(self, object_type: str, record_id: str, properties: list[str],
            **kwargs: Any) -> dict[str, Any] | None:
        """One record, or None when it does not exist (any more)."""
        try:
            return self._client.call(f"{object_type}.get_by_id", self._client.objects.get_by_id,
                                     object_type, record_id, properties=properties,
                                     **kwargs).json()
        except CrmPermanentError as exc:
            if is_not_found(exc):
                self._memo.forget(record_id)
                return None
            raise

    def _read_deals(self, ids: list[str]) -> list[dict[str, Any]]:
        if len(ids) <= 1:
            found = self.get("deals", ids[0], rec.DEAL_READ) if ids else None
            return [found] if found else []
        body = {"inputs": [{"id": i} for i in ids[:100]], "properties": rec.DEAL_READ}
        reply = self._client.call("deals.batch_read", self._client.batch.read, "deals", body)
        return list(reply.json().get("results", []))  # a 207 lists deleted deals as errors
