"""``HubSpotCrm``: the CRM port on HubSpot (contacts as referral records, deals, rewards).

Call budget of one referral's life after intake (DESIGN.md §6, at most 8): create the
contact with its "Referrer" association inline (1); at qualification re-read the contact
with its deal associations (1), write the reward (1), create the deal with its contact
association inline (1) and write the contact's new state (1); at closed-won re-read the
deal (1), write the reward (1) and the contact's state (1). Pipelines, owners, the label id
and the reward object id are read once per process; unchanged properties are never re-sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from referral_sync.crm import (
    AppliedChanges,
    CrmRecordRef,
    CrmTask,
    DuplicateCandidate,
    Owner,
    ReferralSnapshot,
    ReferrerContext,
    SchemaChange,
    apply_one_by_one,
    parse_decimal,
)
from referral_sync.errors import ConfigurationError, CrmPermanentError, NotFound
from referral_sync.hubspot import records as rec
from referral_sync.hubspot.changes import list_changes
from referral_sync.hubspot.client import Alert, HubSpotClient
from referral_sync.hubspot.lookups import Lookups
from referral_sync.hubspot.memo import Memo
from referral_sync.hubspot.owners import OwnerDirectory
from referral_sync.hubspot.pipelines import PipelineCache
from referral_sync.hubspot.rewards import RewardWriter
from referral_sync.hubspot.schema import RewardMode, SchemaManager
from referral_sync.hubspot.search import RateLimiter, Searcher
from referral_sync.hubspot.tasks import TaskWriter
from referral_sync.hubspot.translate import PROVIDER, existing_id, is_conflict, is_not_found
from referral_sync.models import ChangeEvent, Referral, ReferralStatus, RewardEntry, RoutingDecision
from referral_sync.program.schema import CrmMapping
from referral_sync.settings import Settings

log = logging.getLogger(__name__)

DEAL_TO_CONTACT = 3  # HUBSPOT_DEFINED, unlabeled
_DEAL_PHASE = {ReferralStatus.QUALIFIED, ReferralStatus.OPPORTUNITY,
               ReferralStatus.CLOSED_WON, ReferralStatus.CLOSED_LOST}


def _assoc(record_id: str, category: str, type_id: int) -> dict[str, Any]:
    return {"to": {"id": record_id},
            "types": [{"associationCategory": category, "associationTypeId": type_id}]}


class HubSpotCrm:
    """The CRM port on a HubSpot portal."""

    provider = PROVIDER
    # Webhooks carry one changed property, not the record: processing re-reads it.
    events_carry_current_state = False

    def __init__(self, client: HubSpotClient, mapping: CrmMapping, *,
                 reward_mode: RewardMode = "auto", portal_id: str | None = None,
                 deal_pipeline: str | None = None, search_per_second: float = 4.0,
                 index_lag: timedelta = timedelta(seconds=30),
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._mapping = mapping
        self._portal_id = portal_id
        self._pipeline = deal_pipeline
        self._index_lag = index_lag
        self._memo = Memo()
        self._search = Searcher(client, RateLimiter(search_per_second, clock=monotonic,
                                                    sleep=sleep))
        self._owners = OwnerDirectory(client, monotonic=monotonic)
        self._pipelines = PipelineCache(client, monotonic=monotonic)
        self.schema = SchemaManager(client, reward_mode=reward_mode)
        self._lookups = Lookups(client, self._search, self._owners, mapping, monotonic=monotonic)
        self._rewards = RewardWriter(client, self.schema, self._memo)
        self._tasks = TaskWriter(client, self._search, self._owners, self._memo)

    @classmethod
    def from_settings(cls, settings: Settings, mapping: CrmMapping, *,
                      clock: Callable[[], datetime] | None = None,
                      sleep: Callable[[float], None] = time.sleep,
                      on_alert: Alert | None = None) -> HubSpotCrm:
        """Build the adapter from ``REFERRAL_SYNC_HUBSPOT__*`` settings.

        Raises:
            ConfigurationError: no access token configured.
        """
        hs = settings.hubspot
        if hs.access_token is None:
            raise ConfigurationError("HubSpot access token missing",
                                     hs.auth_problems())
        client = HubSpotClient(
            access_token=hs.access_token.get_secret_value(), base_url=hs.base_url,
            timeout=hs.timeout_seconds, clock=clock, sleep=sleep,
            portal_tz=ZoneInfo(hs.timezone), on_alert=on_alert)
        return cls(client, mapping, reward_mode=hs.reward_object, portal_id=hs.portal_id,
                   sleep=sleep)

    # -- reads at intake ---------------------------------------------------------------------
    def find_duplicates(self, email: str, domain: str | None, company_key: str,
                        since: datetime) -> list[DuplicateCandidate]:
        """Contacts and companies matching the referee (two searches)."""
        return self._lookups.find_duplicates(email, domain, company_key, since)

    def load_referrer(self, email: str) -> ReferrerContext | None:
        """The referrer's contact and primary company (two reads)."""
        return self._lookups.load_referrer(email)

    def find_account_by_domain(self, domain: str) -> ReferrerContext | None:
        """The company owning ``domain`` (usually answered from the duplicate search)."""
        return self._lookups.find_account_by_domain(domain)

    def get_owner(self, ref: str) -> Owner | None:
        """An owner by id, ``email:``, ``userId:`` or ``queue:`` reference (cached list)."""
        return self._owners.get(ref)

    # -- the referral's records ------------------------------------------------------------
    def create_referral(self, referral: Referral, decision: RoutingDecision) -> CrmRecordRef:
        """Create (or adopt, by e-mail) the referred contact, associated to its referrer."""
        owner_id = self._owners.owner_id(decision.owner_id or referral.owner_id)
        props = rec.new_contact(referral, owner_id)
        referrer = referral.referrer.contact_id
        self._memo.link(referral.id, "referrer", referrer)
        label = self.schema.referrer_label_id() if referrer else None
        if referrer and label is None:
            log.warning("no Referrer association label in HubSpot: run `referral-sync install`")
        assoc = [_assoc(referrer, "USER_DEFINED", label)] if referrer and label else []
        try:
            reply = self._client.call("contacts.create", self._client.objects.create,
                                      "contacts", {"properties": props, "associations": assoc})
            contact_id = str(reply.json()["id"])
        except CrmPermanentError as exc:
            if not is_conflict(exc):
                raise
            contact_id = existing_id(exc) or self._id_by("contacts", props["email"], "email")
            self._adopt_contact(contact_id, props, assoc)
        self._memo.link(referral.id, "contact", contact_id)
        self._memo.seen(contact_id, props)
        if not self._mapping.create_deal_at_qualification:
            self._ensure_deal(referral, contact_id, owner_id)
        return CrmRecordRef(record_id=contact_id, record_type="contact",
                            url=self._url("0-1", contact_id))

    def _adopt_contact(self, contact_id: str, props: dict[str, str],
                       assoc: list[dict[str, Any]]) -> None:
        # The person exists (or our earlier create got through): make it the referral record.
        # Lifecycle stage only moves forward in HubSpot, so an existing contact keeps its own.
        update = {k: v for k, v in props.items() if k not in ("email", "lifecyclestage")}
        self._client.call("contacts.update", self._client.objects.update, "contacts",
                          contact_id, {"properties": update})
        for item in assoc:
            self._client.call("contacts.associate", self._client.associations.create,
                              "contacts", contact_id, "contacts", item["to"]["id"],
                              item["types"])

    def _id_by(self, object_type: str, value: str, id_property: str) -> str:
        reply = self._client.call(f"{object_type}.get_by_{id_property}",
                                  self._client.objects.get_by_id, object_type, value,
                                  properties=[id_property], id_property=id_property)
        return str(reply.json()["id"])

    def _ensure_deal(self, referral: Referral, contact_id: str, owner_id: str | None) -> str:
        known = referral.crm_opportunity_id or self._memo.linked(referral.id, "deal")
        if known:
            return known
        stage = self._pipelines.entry_stage(self._pipeline)
        pending = self._memo.take_stash(referral.id)
        props = {**rec.new_deal(referral, owner_id, stage.pipeline_id, stage.id), **pending}
        body = {"properties": props,
                "associations": [_assoc(contact_id, "HUBSPOT_DEFINED", DEAL_TO_CONTACT)]}
        try:
            reply = self._client.call("deals.create", self._client.objects.create, "deals", body)
            deal_id = str(reply.json()["id"])
        except CrmPermanentError as exc:
            if not is_conflict(exc):
                self._memo.stash(referral.id, pending)
                raise
            # referral_id is unique on deals: this referral's deal exists already.
            deal_id = existing_id(exc) or self._id_by("deals", referral.id, "referral_id")
        except Exception:
            self._memo.stash(referral.id, pending)
            raise
        self._memo.link(referral.id, "deal", deal_id)
        self._memo.seen(deal_id, props)
        # The service looks deals' events up by this id; it saves the referral after us.
        referral.crm_opportunity_id = deal_id
        return deal_id

    def update_referral(self, referral: Referral, *,
                        fields: dict[str, object] | None = None) -> None:
        """Write the referral's state (status, dates, owner, routing, reward status) to its
        contact; at qualification also create its deal. Unchanged values are not sent."""
        contact_id = referral.crm_record_id or self._memo.linked(referral.id, "contact")
        if not contact_id:
            raise NotFound(f"referral {referral.id} has no HubSpot contact yet")
        owner_id = self._owners.owner_id(referral.owner_id)
        wanted: dict[str, object] = {**rec.contact_state(referral),
                                     "referral_routing_reason": referral.routing_reason}
        if owner_id:
            wanted["hubspot_owner_id"] = owner_id
        wanted.update(rec.aliased(fields))
        if referral.status in _DEAL_PHASE and (
                self._mapping.create_deal_at_qualification or referral.crm_opportunity_id):
            deal_id = self._ensure_deal(referral, contact_id, owner_id)
            self._stamp_deal(referral, deal_id, owner_id)
            if referral.status is ReferralStatus.QUALIFIED:
                # A deal associated to the referred contact means "opportunity" (DESIGN §4).
                wanted["referral_status"] = ReferralStatus.OPPORTUNITY
        changed = self._memo.changed(contact_id, rec.writable(wanted))
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

    def _stamp_deal(self, referral: Referral, deal_id: str, owner_id: str | None) -> None:
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

    def read_referral(self, referral: Referral) -> ReferralSnapshot:
        """The referral's current state: its deal's stage once it has a deal, else the
        contact's ``referral_status`` as the AE set it.

        Raises:
            NotFound: the contact was deleted.
        """
        contact_id = referral.crm_record_id or self._memo.linked(referral.id, "contact")
        if not contact_id:
            raise NotFound(f"referral {referral.id} has no HubSpot contact")
        self._memo.link(referral.id, "contact", contact_id)
        self._memo.link(referral.id, "referrer", referral.referrer.contact_id)
        deal_id = referral.crm_opportunity_id or self._memo.linked(referral.id, "deal")
        deal = self._get("deals", deal_id, rec.DEAL_READ) if deal_id else None
        if deal is not None:
            return self._deal_snapshot(referral, contact_id, deal)
        contact = self._get("contacts", contact_id, rec.CONTACT_READ, associations=["deals"])
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

    def _get(self, object_type: str, record_id: str, properties: list[str],
             **kwargs: Any) -> dict[str, Any] | None:
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
            found = self._get("deals", ids[0], rec.DEAL_READ) if ids else None
            return [found] if found else []
        body = {"inputs": [{"id": i} for i in ids[:100]], "properties": rec.DEAL_READ}
        reply = self._client.call("deals.batch_read", self._client.batch.read, "deals", body)
        return list(reply.json().get("results", []))  # a 207 lists deleted deals as errors

    # -- rewards, tasks, changes, schema -----------------------------------------------------
    def upsert_reward(self, entry: RewardEntry) -> str:
        """Create or update the reward record keyed by ``entry.key`` (see ``rewards``)."""
        return self._rewards.upsert(entry)

    def create_task(self, task: CrmTask) -> str:
        """Create a task on the referral's contact; idempotent when ``task.key`` is set."""
        return self._tasks.create(task)

    def apply_changes(
        self, referral: Referral, *, fields: dict[str, object] | None = None,
        rewards: Sequence[RewardEntry] = (), tasks: Sequence[CrmTask] = (),
    ) -> AppliedChanges:
        """Record fields, rewards and tasks of one event (HubSpot has no cross-object batch)."""
        return apply_one_by_one(self, referral, fields=fields, rewards=rewards, tasks=tasks)

    def list_changes(self, since: datetime) -> Iterator[ChangeEvent]:
        """Referral contacts and deals modified since ``since``, oldest first (streamed)."""
        return list_changes(self._search, self._pipelines, since, self._client.now(),
                            index_lag=self._index_lag)

    def ensure_schema(self, *, dry_run: bool) -> list[SchemaChange]:
        """Install the referral schema (``spec``); returns what changed (or would)."""
        return self.schema.ensure(dry_run=dry_run)

    def schema_drift(self) -> list[SchemaChange]:
        """What ``ensure_schema`` would change now (for ``doctor``); empty when in sync."""
        return self.schema.ensure(dry_run=True)

    def api_calls(self) -> int:
        """HTTP requests sent to HubSpot by this adapter, retries included."""
        return self._client.api_calls()

    def _url(self, type_id: str, record_id: str) -> str | None:
        if not self._portal_id:
            return None
        return f"https://app.hubspot.com/contacts/{self._portal_id}/record/{type_id}/{record_id}"
