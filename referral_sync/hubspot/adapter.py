"""``HubSpotCrm``: the CRM port on HubSpot (contacts as referral records, deals, rewards).

API calls of one referral's life through the service, 8 (``benchmarks/bench_api_calls.py``):

- intake, 4: a contacts search (referee by e-mail and domain, referrer by e-mail) and a
  companies search (referee's domain and name, referrer's company), the contact create with
  its "Referrer" association inline, one batch create of its tasks (first action, notice);
- qualified, 2: the deal create (contact association inline) and the reward create
  (associations inline) carrying the notice that told the referrer. No re-read: the webhook
  says the contact's ``referral_status`` is now qualified, and a forward move needs nothing
  more (``ChangeEvent.complete``);
- closed-won, 2: re-read the deal (a stage means nothing without the pipeline metadata, and
  the reward may depend on the amount), the reward create with its notice.

HubSpot has no request that writes two object types, so each milestone writes one record: a
milestone's notice is a property of its reward, and once the deal exists it is the
referral's record (its stage is the status) and the contact is not written again, as a
converted Lead is not in Salesforce. A process also reads the owner list and the label id at
its first intake, and the reward object and the pipelines at its first qualification (the
owner list again every 15 minutes, the pipelines every hour). Task keys are searched for only
where the task could exist already (a retry); unchanged properties are never re-sent.
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
from referral_sync.hubspot.rewards import RewardWriter, deal_reward_properties, notice_text
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
        self._records.link(referral)
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
        rewards (one create or batch create, associations inline), the tasks
        (one batch create, associations inline, after at most one search for the keys that
        may exist already), then the contact's changed state (one update, none if nothing
        changed; none at all once the deal exists, which is then the referral's record).

        A referrer notice that announces a reward (``CrmTask.reward_key``) is kept on that
        reward's record, written in the same request, not as a task of its own: a reward and
        its notice cannot be half-written, and a milestone costs one write. When the reward
        is not in this call, an earlier call wrote it, and its notice with it.
        """
        self._records.link(referral)
        notices = {t.reward_key: notice_text(t) for t in tasks if t.reward_key}
        tasks = [t for t in tasks if not t.reward_key]
        stashed = self._stash_for_deal(referral, fields, rewards, notices)
        contact_id, changed = (self._records.state(referral, fields) if fields is not None
                               else (None, {}))
        written = self._rewards.write_many([e for e in rewards if e.key not in stashed],
                                           notices)
        deal_id = self._records.deal_of(referral) or ""
        written.update({key: deal_id for key in stashed})
        task_ids = self._tasks.create_many(
            [self._on_referral(t, referral, contact_id) for t in tasks])
        if contact_id:
            self._records.write_contact(contact_id, changed)
        return AppliedChanges(rewards=written, tasks=task_ids)

    def _stash_for_deal(self, referral: Referral, fields: dict[str, object] | None,
                        rewards: Sequence[RewardEntry], notices: dict[str, str]) -> set[str]:
        """Fallback rewards (deal properties) of a referral whose deal this call creates go
        out with the deal's creation instead of in a call of their own."""
        if not rewards or fields is None or not self._records.deal_due(referral) or \
                self.schema.reward_schema() is not None:
            return set()
        for entry in rewards:
            self._memo.stash(referral.id, deal_reward_properties(entry, notices.get(entry.key)))
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
