"""``HubSpotCrm``: the CRM port on HubSpot (contacts as referral records, deals, rewards).

API calls of one referral's life through the service (``benchmarks/bench_api_calls.py``):

- intake, 4: a contacts search (referee by e-mail and domain, referrer by e-mail) and a
  companies search (referee's domain and name, referrer's company), the contact create with
  its "Referrer" association inline, one batch create of its tasks (first action, notice);
- qualified, 5: re-read the contact with its deal associations, create the deal (contact
  association inline), create the reward (associations inline), create the notice, update
  the contact's state;
- closed-won, 4: re-read the deal, create the reward, create the notice, update the contact.

HubSpot has no request that writes two object types, so 13 is the floor while a milestone
writes a reward record, a notice task and the contact's state; DESIGN.md §6's 8 would need
fewer records per milestone (the reward and notice on the deal, no contact mirror once the
deal exists). A process also reads the owner list and the label id at its first intake, and
the reward object and the pipelines at its first qualification (the owner list again every
15 minutes, the pipelines every hour). Task keys are searched for only where the task could
exist already (a retry, a notice with no new reward); unchanged properties are never re-sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from referral_sync.crm import (
    AppliedChanges,
    CrmRecordRef,
    CrmTask,
    DuplicateCandidate,
    IntakeLookup,
    IntakeSnapshot,
    Owner,
    ReferralSnapshot,
    ReferrerContext,
    SchemaChange,
)
from referral_sync.errors import ConfigurationError
from referral_sync.hubspot.changes import list_changes
from referral_sync.hubspot.client import Alert, HubSpotClient
from referral_sync.hubspot.lookups import Lookups
from referral_sync.hubspot.memo import Memo
from referral_sync.hubspot.owners import OwnerDirectory
from referral_sync.hubspot.pipelines import PipelineCache
from referral_sync.hubspot.reads import ReferralReader
from referral_sync.hubspot.referrals import RecordWriter
from referral_sync.hubspot.rewards import RewardWriter, Written, deal_reward_properties
from referral_sync.hubspot.schema import RewardMode, SchemaManager
from referral_sync.hubspot.search import RateLimiter, Searcher
from referral_sync.hubspot.tasks import TaskWriter
from referral_sync.hubspot.translate import PROVIDER
from referral_sync.models import ChangeEvent, Referral, ReferralStatus, RewardEntry, RoutingDecision
from referral_sync.program.schema import CrmMapping
from referral_sync.settings import Settings


class HubSpotCrm:
    """The CRM port on a HubSpot portal."""

    provider = PROVIDER
    # Webhooks carry one changed property, not the record: processing re-reads it.
    events_carry_current_state = False
    statuses_set_by_crm: frozenset[ReferralStatus] = frozenset()

    def __init__(self, client: HubSpotClient, mapping: CrmMapping, *,
                 reward_mode: RewardMode = "auto", portal_id: str | None = None,
                 deal_pipeline: str | None = None, search_per_second: float = 4.0,
                 index_lag: timedelta = timedelta(seconds=30),
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._mapping = mapping
        self._portal_id = portal_id
        self._index_lag = index_lag
        memo = self._memo = Memo()
        self._search = Searcher(client, RateLimiter(search_per_second, clock=monotonic,
                                                    sleep=sleep))
        self._owners = OwnerDirectory(client, monotonic=monotonic)
        self._pipelines = PipelineCache(client, monotonic=monotonic)
        self.schema = SchemaManager(client, reward_mode=reward_mode)
        self._lookups = Lookups(client, self._search, self._owners, mapping, monotonic=monotonic)
        self._rewards = RewardWriter(client, self.schema, self._memo)
        self._tasks = TaskWriter(client, self._search, self._owners, self._memo)
        self._records = RecordWriter(client, memo, self._owners, self._pipelines, self.schema,
                                     mapping, deal_pipeline)
        self._reader = ReferralReader(client, memo, self._pipelines)

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
    def load_intake(self, lookup: IntakeLookup) -> IntakeSnapshot:
        """The referrer, duplicate candidates, the matching company and the owners routing
        may pick, in two searches (``lookups``)."""
        return self._lookups.load_intake(lookup)

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
    def create_referral(self, referral: Referral, decision: RoutingDecision, *,
                        tasks: Sequence[CrmTask] = ()) -> CrmRecordRef:
        """Create (or adopt, by e-mail) the referred contact, associated to its referrer,
        and the keyed ``tasks`` on it (one batch create). On a contact created by this very
        call no task can exist yet, so their keys are not searched for."""
        owner_id = self._owners.owner_id(decision.owner_id or referral.owner_id)
        contact_id, new = self._records.create_contact(referral, owner_id)
        if not self._mapping.create_deal_at_qualification:
            self._records.ensure_deal(referral, contact_id, owner_id)
        if tasks:
            self._tasks.create_many([self._on_referral(t, referral, contact_id) for t in tasks],
                                    absent={str(t.key) for t in tasks if t.key} if new else ())
        return CrmRecordRef(record_id=contact_id, record_type="contact",
                            url=self._url("0-1", contact_id))

    def update_referral(self, referral: Referral, *,
                        fields: dict[str, object] | None = None) -> None:
        """Write the referral's state (status, dates, owner, routing, reward status) to its
        contact; at qualification also create its deal. Unchanged values are not sent."""
        contact_id, changed = self._records.state(referral, fields)
        self._records.write_contact(contact_id, changed)

    def read_referral(self, referral: Referral) -> ReferralSnapshot:
        """The referral's current state: its deal's stage once it has a deal, else the
        contact's ``referral_status`` as the AE set it (``reads``).

        Raises:
            NotFound: the contact was deleted.
        """
        return self._reader.read(referral)

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
        """Everything one event changes, in this order (HubSpot has no cross-object batch):
        the deal when the state write creates it (its contact association inline), the
        rewards (one create or batch create, associations inline), the tasks (one batch
        create, associations inline, after at most one search for the keys that may exist
        already), then the contact's changed state (one update, none if nothing changed).

        A task whose key embeds the key of a reward created new in this call (a milestone's
        notice, ``notice:<referral>:<milestone>:<n>``) is not searched for: every attempt
        writes the rewards before the tasks, so an earlier attempt that got as far as the
        notice would have created the reward, and it would not be new now.
        """
        stashed = self._stash_for_deal(referral, fields, rewards)
        contact_id, changed = (self._records.state(referral, fields) if fields is not None
                               else (None, {}))
        written = self._rewards.write_many([e for e in rewards if e.key not in stashed])
        deal_id = self._records.deal_of(referral) or ""
        written.update({key: Written(deal_id) for key in stashed})
        new = [key for key, w in written.items() if w.new]
        absent = {str(t.key) for t in tasks
                  if t.key and any(f":{key}:" in f":{t.key}:" for key in new)}
        task_ids = self._tasks.create_many(
            [self._on_referral(t, referral, contact_id) for t in tasks], absent=absent)
        if contact_id:
            self._records.write_contact(contact_id, changed)
        return AppliedChanges(rewards={k: w.record_id for k, w in written.items()},
                              tasks=task_ids)

    def _stash_for_deal(self, referral: Referral, fields: dict[str, object] | None,
                        rewards: Sequence[RewardEntry]) -> set[str]:
        """Fallback rewards (deal properties) of a referral whose deal this call creates go
        out with the deal's creation instead of in a call of their own."""
        if not rewards or fields is None or not self._records.deal_due(referral) or \
                self.schema.reward_schema() is not None:
            return set()
        for entry in rewards:
            self._memo.stash(referral.id, deal_reward_properties(entry))
        return {entry.key for entry in rewards}

    def _on_referral(self, task: CrmTask, referral: Referral,
                     contact_id: str | None) -> CrmTask:
        """A task without a record goes on the referral's records: its contact, and its deal
        too once there is one (both inline in the task's create: it shows on both timelines,
        where the AE works the referral before and after qualification)."""
        if task.what_id:
            return task
        contact_id = contact_id or self._records.contact_of(referral)
        deal_id = self._records.deal_of(referral)
        target = f"{contact_id},deal:{deal_id}" if deal_id else contact_id
        return task.model_copy(update={"what_id": target})

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
