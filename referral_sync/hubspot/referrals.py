"""The referral's own HubSpot records: the referred contact (created with its "Referrer"
association inline, or adopted by e-mail), its deal (created with its contact association
inline, idempotent on the unique ``referral_id``) and the contact's mirrored state (only the
properties that changed are sent; nothing is sent when none did).

Once the referral has a deal, the deal is its record, as a converted Lead hands over to its
Opportunity in Salesforce: the deal's stage is the status, its reward records hang on it, and
the contact keeps what the AE set (``referral_status`` = qualified) without further writes.
"""

from __future__ import annotations

import logging
from typing import Any

from referral_sync.errors import CrmPermanentError, NotFound
from referral_sync.hubspot import records as rec
from referral_sync.hubspot.client import HubSpotClient
from referral_sync.hubspot.memo import Memo
from referral_sync.hubspot.owners import OwnerDirectory
from referral_sync.hubspot.pipelines import PipelineCache
from referral_sync.hubspot.schema import SchemaManager
from referral_sync.hubspot.translate import existing_id, is_conflict, is_not_found
from referral_sync.models import Referral, ReferralStatus
from referral_sync.program.schema import CrmMapping

log = logging.getLogger(__name__)

DEAL_TO_CONTACT = 3  # HUBSPOT_DEFINED, unlabeled
DEAL_PHASE = frozenset({ReferralStatus.QUALIFIED, ReferralStatus.OPPORTUNITY,
                        ReferralStatus.CLOSED_WON, ReferralStatus.CLOSED_LOST})


def assoc(record_id: str, category: str, type_id: int) -> dict[str, Any]:
    """One inline association of a create request."""
    return {"to": {"id": record_id},
            "types": [{"associationCategory": category, "associationTypeId": type_id}]}


class RecordWriter:
    """Creates and updates a referral's contact and deal."""

    def __init__(self, client: HubSpotClient, memo: Memo, owners: OwnerDirectory,
                 pipelines: PipelineCache, schema: SchemaManager, mapping: CrmMapping,
                 pipeline: str | None) -> None:
        self._client = client
        self._memo = memo
        self._owners = owners
        self._pipelines = pipelines
        self._schema = schema
        self._mapping = mapping
        self._pipeline = pipeline

    def contact_of(self, referral: Referral) -> str:
        """The referral's contact id.

        Raises:
            NotFound: the referral has no contact yet.
        """
        contact_id = referral.crm_record_id or self._memo.linked(referral.id, "contact")
        if not contact_id:
            raise NotFound(f"referral {referral.id} has no HubSpot contact yet")
        return contact_id

    def deal_of(self, referral: Referral) -> str | None:
        """The referral's deal id, if one is known."""
        return referral.crm_opportunity_id or self._memo.linked(referral.id, "deal")

    def link(self, referral: Referral) -> None:
        """Remember the referral's known records (the store knows them; a fresh process's
        memo does not yet), so reward and task associations find them without a read."""
        self._memo.link(referral.id, "contact", referral.crm_record_id)
        self._memo.link(referral.id, "referrer", referral.referrer.contact_id)
        self._memo.link(referral.id, "deal", referral.crm_opportunity_id)

    def deal_due(self, referral: Referral) -> bool:
        """True when writing the referral's state now creates its deal."""
        return (referral.status in DEAL_PHASE and self._mapping.create_deal_at_qualification
                and not self.deal_of(referral))

    # -- the contact -----------------------------------------------------------------------
    def create_contact(self, referral: Referral, owner_id: str | None) -> tuple[str, bool]:
        """Create (or adopt, by e-mail) the referred contact; returns its id and whether this
        call created it (then nothing keyed to it can exist in HubSpot yet)."""
        props = rec.new_contact(referral, owner_id)
        referrer = referral.referrer.contact_id
        self._memo.link(referral.id, "referrer", referrer)
        label = self._schema.referrer_label_id() if referrer else None
        if referrer and label is None:
            log.warning("no Referrer association label in HubSpot: run `referral-sync install`")
        links = [assoc(referrer, "USER_DEFINED", label)] if referrer and label else []
        try:
            reply = self._client.call("contacts.create", self._client.objects.create,
                                      "contacts", {"properties": props, "associations": links})
            contact_id, new = str(reply.json()["id"]), True
        except CrmPermanentError as exc:
            if not is_conflict(exc):
                raise
            contact_id = existing_id(exc) or self._id_by("contacts", props["email"], "email")
            self._adopt_contact(contact_id, props, links)
            new = False
        self._memo.link(referral.id, "contact", contact_id)
        self._memo.seen(contact_id, props)
        return contact_id, new

    def _adopt_contact(self, contact_id: str, props: dict[str, str],
                       links: list[dict[str, Any]]) -> None:
        # The person exists (or our earlier create got through): make it the referral record.
        # Lifecycle stage only moves forward in HubSpot, so an existing contact keeps its own.
        update = {k: v for k, v in props.items() if k not in ("email", "lifecyclestage")}
        self._client.call("contacts.update", self._client.objects.update, "contacts",
                          contact_id, {"properties": update})
        for item in links:
            self._client.call("contacts.associate", self._client.associations.create,
                              "contacts", contact_id, "contacts", item["to"]["id"],
                              item["types"])

    def _id_by(self, object_type: str, value: str, id_property: str) -> str:
        reply = self._client.call(f"{object_type}.get_by_{id_property}",
                                  self._client.objects.get_by_id, object_type, value,
                                  properties=[id_property], id_property=id_property)
        return str(reply.json()["id"])

    def state(self, referral: Referral,
              fields: dict[str, object] | None) -> tuple[str, dict[str, str]]:
        """The contact's id and the state properties that differ from what HubSpot holds; in
        the deal phase this creates (or stamps) the referral's deal instead, and the
        contact has nothing to write."""
        contact_id = self.contact_of(referral)
        owner_id = self._owners.owner_id(referral.owner_id)
        if referral.status in DEAL_PHASE and (
                self._mapping.create_deal_at_qualification or self.deal_of(referral)):
            deal_id = self.ensure_deal(referral, contact_id, owner_id)
            self._stamp_deal(referral, deal_id)
            return contact_id, {}
        wanted: dict[str, object] = {**rec.contact_state(referral),
                                     "referral_routing_reason": referral.routing_reason}
        if owner_id:
            wanted["hubspot_owner_id"] = owner_id
        wanted.update(rec.aliased(fields))
        return contact_id, self._memo.changed(contact_id, rec.writable(wanted))

    def write_contact(self, contact_id: str, changed: dict[str, str]) -> None:
        """Send ``changed`` to the contact (no call when empty).

        Raises:
            NotFound: the contact was deleted.
        """
        if not changed:
            return
        try:
            self._client.call("contacts.update", self._client.objects.update, "contacts",
                              contact_id, {"properties": changed})
        except CrmPermanentError as exc:
            self._memo.forget(contact_id)
            if is_not_found(exc):
                raise NotFound(f"HubSpot contact {contact_id} no longer exists") from exc
            raise
        self._memo.seen(contact_id, changed)

    # -- the deal --------------------------------------------------------------------------
    def ensure_deal(self, referral: Referral, contact_id: str, owner_id: str | None) -> str:
        """The referral's deal, created (with the stashed fallback reward properties and its
        contact association inline) when none is known."""
        known = self.deal_of(referral)
        if known:
            return known
        stage = self._pipelines.entry_stage(self._pipeline)
        pending = self._memo.take_stash(referral.id)
        props = {**rec.new_deal(referral, owner_id, stage.pipeline_id, stage.id), **pending}
        body = {"properties": props,
                "associations": [assoc(contact_id, "HUBSPOT_DEFINED", DEAL_TO_CONTACT)]}
        try:
            reply = self._client.call("deals.create", self._client.objects.create, "deals", body)
            deal_id = str(reply.json()["id"])
        except CrmPermanentError as exc:
            if not is_conflict(exc):
                self._memo.stash(referral.id, pending)
                raise
            # referral_id is unique on deals: this referral's deal exists already.
            deal_id = existing_id(exc) or self._id_by("deals", referral.id, "referral_id")
            self._catch_up(deal_id, pending)
        except Exception:
            self._memo.stash(referral.id, pending)
            raise
        self._memo.link(referral.id, "deal", deal_id)
        self._memo.seen(deal_id, props)
        # The service looks deals' events up by this id; it saves the referral after us.
        referral.crm_opportunity_id = deal_id
        return deal_id

    def _catch_up(self, deal_id: str, pending: dict[str, str]) -> None:
        """Write the stashed properties a deal made elsewhere did not get at its creation."""
        if pending:
            self._client.call("deals.update", self._client.objects.update, "deals", deal_id,
                              {"properties": pending})

    def _stamp_deal(self, referral: Referral, deal_id: str) -> None:
        """Give a deal an AE created by hand the referral's id and attribution, once."""
        if not self._memo.changed(deal_id, {"referral_id": referral.id}):
            return
        props = rec.writable({"referral_id": referral.id, **rec.attribution(referral)})
        try:
            self._client.call("deals.update", self._client.objects.update, "deals", deal_id,
                              {"properties": props})
        except CrmPermanentError as exc:
            if is_not_found(exc):
                # Deleted in HubSpot: the next read finds whatever deal the contact has now.
                self._memo.forget(deal_id)
                return
            if not is_conflict(exc):
                raise
        self._memo.seen(deal_id, props)
