"""``SalesforceCrm``: the CRM port on Salesforce.

Each port method costs one API call: the reads it needs go into one Composite request, and
every write is an upsert on an external id (``Referral_Id__c``, ``Reward_Key__c``,
``Referral_Task_Key__c``) followed, in the same Composite, by a read of the record id — so a
retry after a timeout can never create a second record. ``find_account_by_domain`` right
after ``find_duplicates`` and repeated ``get_owner`` lookups are answered from a short memo.
``apply_changes`` (beyond the port) writes everything one CRM event changes in one call.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from simple_salesforce.api import Salesforce

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
from referral_sync.errors import CrmPermanentError
from referral_sync.models import (
    ChangeEvent,
    Referral,
    ReferralStatus,
    RewardEntry,
    RoutingDecision,
)
from referral_sync.program.schema import CrmMapping
from referral_sync.salesforce import bodies, install, queries, records
from referral_sync.salesforce import schema as s
from referral_sync.salesforce.auth import connect
from referral_sync.salesforce.client import SalesforceClient, SubRequest, SubResult, query_path
from referral_sync.salesforce.faults import PROVIDER
from referral_sync.salesforce.owners import OwnerBook
from referral_sync.salesforce.reads import COMPOSITE_LIMIT, IntakeReads
from referral_sync.salesforce.status import StatusMapping
from referral_sync.salesforce.writes import Upsert
from referral_sync.settings import Settings

#: ``RoutingDecision.owner_id`` that hands the Lead to Salesforce's active assignment rule
#: (or, as ``assignment_rule:<01Q… id>``, to a specific rule).
ASSIGNMENT_RULE = "assignment_rule"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SalesforceCrm:
    """The CRM port implemented with simple-salesforce (REST, Composite, Metadata API)."""

    provider = PROVIDER
    # The deploy project's conversion Flow marks a new referral Opportunity itself.
    statuses_set_by_crm = frozenset({ReferralStatus.OPPORTUNITY})

    def __init__(
        self,
        client: SalesforceClient | Salesforce,
        mapping: CrmMapping | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
        change_overlap: timedelta = timedelta(minutes=5),
    ) -> None:
        self._client = client if isinstance(client, SalesforceClient) else (
            SalesforceClient.wrap(client))
        self._mapping = mapping or CrmMapping()
        self._statuses = StatusMapping.from_mapping(self._mapping)
        self._clock = clock
        self._overlap = change_overlap
        self._owners = OwnerBook(self._client, clock)
        self._reads = IntakeReads(self._client, self._mapping, self._owners, clock)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        mapping: CrmMapping,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> SalesforceCrm:
        """Build from ``REFERRAL_SYNC_SALESFORCE__*`` settings; logs in on first use."""
        sf_settings = settings.salesforce
        client = SalesforceClient(
            lambda sess: connect(sf_settings, sess),
            session=session,
            timeout=sf_settings.timeout_seconds,
            sleep=sleep,
        )
        return cls(client, mapping)

    def api_calls(self) -> int:
        """HTTP requests made to Salesforce so far (logins and retries included)."""
        return self._client.api_calls()

    # -- reads -------------------------------------------------------------------------

    def load_intake(self, lookup: IntakeLookup) -> IntakeSnapshot:
        """Referrer, duplicates, account match and owners in one Composite call."""
        return self._reads.load_intake(lookup)

    def find_duplicates(
        self, email: str, domain: str | None, company_key: str, since: datetime
    ) -> list[DuplicateCandidate]:
        """Records matching the referee, in one Composite call."""
        return self._reads.find_duplicates(email, domain, company_key, since)

    def load_referrer(self, email: str) -> ReferrerContext | None:
        """The referrer's contact, account facts, account team and colleagues (one call)."""
        return self._reads.load_referrer(email)

    def find_account_by_domain(self, domain: str) -> ReferrerContext | None:
        """The account that owns ``domain``; right after a duplicate search, no call."""
        return self._reads.find_account_by_domain(domain)

    def get_owner(self, ref: str) -> Owner | None:
        """A user or queue by id, ``email:<address>`` or ``queue:<name>`` (memoised)."""
        return self._owners.get(ref)

    def read_referral(self, referral: Referral) -> ReferralSnapshot:
        """The referral's Lead and Opportunity as they are now (one call).

        Raises:
            CrmPermanentError: ``NOT_FOUND`` when neither record exists (deleted or merged).
        """
        soql = queries.referral_queries(referral.id, referral.crm_record_id)
        subs = [SubRequest(ref, "GET", query_path(q)) for ref, q in soql.items()]

        def read(results: dict[str, SubResult]) -> ReferralSnapshot:
            leads = self._client.raise_for(results.get("lead")).records()
            opportunities = self._client.raise_for(results.get("opportunity")).records()
            if not leads and not opportunities:
                raise CrmPermanentError(f"referral {referral.id} has no Lead or Opportunity",
                                        provider=PROVIDER, http_status=404, code="NOT_FOUND")
            return records.snapshot(referral.id, leads[0] if leads else None,
                                    opportunities[0] if opportunities else None,
                                    self._statuses)

        return self._client.composite(subs, read)

    def list_changes(self, since: datetime) -> Iterator[ChangeEvent]:
        """Referral Leads and Opportunities changed since ``since`` minus the overlap
        (commits can land with an earlier ``SystemModstamp``), oldest first, streamed."""
        start = since - self._overlap
        streams = [self._changes(sobject, start) for sobject in ("Lead", "Opportunity")]
        yield from heapq.merge(*streams, key=lambda event: event.occurred_at)

    def _changes(self, sobject: str, start: datetime) -> Iterator[ChangeEvent]:
        for row in self._client.query_pages(queries.changes_query(sobject, start)):
            event_id = f"poll:{sobject}:{row['Id']}:{row.get('SystemModstamp')}"
            event = records.change_event(event_id, sobject, row, self._statuses, start)
            if event is not None:
                yield event

    # -- writes ------------------------------------------------------------------------

    def _owner_id(self, ref: str) -> str:
        if queries.RECORD_ID.match(ref):
            return ref
        owner = self.get_owner(ref)
        if owner is None:
            raise CrmPermanentError(f"owner {ref.split(':', 1)[0]}:… not found in Salesforce",
                                    provider=PROVIDER, code="UNKNOWN_OWNER")
        return owner.id

    def _upsert(self, upsert: Upsert) -> dict[str, Any]:
        """One upsert (optionally guarded) and its id, in one Composite call."""
        return self._client.composite(upsert.subrequests(),
                                      lambda results: upsert.result(self._client, results))

    def create_referral(self, referral: Referral, decision: RoutingDecision, *,
                        tasks: Sequence[CrmTask] = ()) -> CrmRecordRef:
        """Upsert the referral Lead by ``Referral_Id__c`` with owner and attribution, and
        upsert the keyed ``tasks`` on it, in one Composite call.

        Assignment rules are off (``Sforce-Auto-Assign: FALSE``) unless the decision's owner
        is ``assignment_rule[:<rule id>]``; then Salesforce routes and we read the owner back.
        """
        body = bodies.lead_body(referral, decision, self._mapping, self._statuses)
        if decision.owner_id.startswith(ASSIGNMENT_RULE):
            rule = decision.owner_id.partition(":")[2]
            assign = queries.record_id(rule) if rule else "TRUE"
        else:
            assign = "FALSE"
            body["OwnerId"] = self._owner_id(decision.owner_id)
        lead = Upsert("lead", "Lead", s.REFERRAL_ID, referral.id, body,
                      {"Sforce-Auto-Assign": assign})
        # The tasks point at the Lead through a Composite reference to its read-back.
        task_ups = self._task_upserts(tasks, f"@{{{lead.ref}_read.Id}}", who=True)
        subs = lead.subrequests() + [sub for up in task_ups for sub in up.subrequests()]
        _fits(subs)

        def read(results: dict[str, SubResult]) -> dict[str, Any]:
            row = lead.result(self._client, results)
            for up in task_ups:
                up.result(self._client, results)
            return row

        row = self._client.composite(subs, read)
        return CrmRecordRef(record_id=row["Id"], record_type="Lead",
                            url=f"{self._client.instance_url}/lightning/r/Lead/{row['Id']}/view")

    def update_referral(self, referral: Referral, *, fields: dict[str, object] | None = None
                        ) -> None:
        """Write status, routing and reward facts; after conversion to the Opportunity
        (converted Leads are read-only), before it to the Lead, owner included."""
        sobject, record_id, values = self._referral_update(referral, fields)
        self._update_records([{"attributes": {"type": sobject}, "Id": record_id, **values}])

    def _referral_update(self, referral: Referral, fields: dict[str, object] | None
                         ) -> tuple[str, str, dict[str, Any]]:
        values = bodies.referral_values(referral, self._statuses)
        if referral.crm_opportunity_id:
            sobject, record_id = "Opportunity", referral.crm_opportunity_id
        elif referral.crm_record_id:
            sobject, record_id = "Lead", referral.crm_record_id
            if referral.owner_id:
                values["OwnerId"] = self._owner_id(referral.owner_id)
        else:
            raise CrmPermanentError(f"referral {referral.id} has no CRM record yet",
                                    provider=PROVIDER, code="NO_RECORD")
        return sobject, record_id, {**values, **bodies.aliased(fields, self._statuses)}

    def _update_records(self, rows: list[dict[str, Any]]) -> None:
        """sObject Collections update, 200 records per call; any failed record raises."""
        for start in range(0, len(rows), 200):
            payload = {"allOrNone": False, "records": rows[start:start + 200]}

            def once(sf: Salesforce, payload: dict[str, Any] = payload) -> None:
                results = sf.restful("composite/sobjects", method="PATCH", json=payload,
                                     headers={"Sforce-Auto-Assign": "FALSE"}) or []
                for result in results:
                    if not result.get("success"):
                        self._client.raise_for(SubResult("record", 400, result.get("errors")))

            self._client.call(once)

    def upsert_reward(self, entry: RewardEntry) -> str:
        """Upsert ``Referral_Reward__c`` by ``Reward_Key__c``; returns its id.

        A newly earned reward is written only if Salesforce still shows its milestone
        (Lead qualified or converted; Opportunity won), checked in the same call, so a stale
        or replayed event can never pay a reward the CRM does not back.

        Raises:
            CrmPermanentError: ``MILESTONE_NOT_REACHED`` when that check fails.
        """
        return str(self._upsert(self._reward_upsert("reward", entry))["Id"])

    def _reward_upsert(self, ref: str, entry: RewardEntry) -> Upsert:
        guard = bodies.reward_guard(entry, self._statuses)
        upsert = Upsert(ref, s.REWARD_OBJECT, s.REWARD_KEY, entry.key, {}, guard=guard)
        body = bodies.reward_body(entry, upsert.guard_ref if guard else None)
        return Upsert(ref, s.REWARD_OBJECT, s.REWARD_KEY, entry.key, body, guard=guard)

    def apply_changes(
        self, referral: Referral, *, fields: dict[str, object] | None = None,
        rewards: Sequence[RewardEntry] = (), tasks: Sequence[CrmTask] = (),
    ) -> AppliedChanges:
        """Everything one event changes, in one API call.

        One Composite with the referral record's update (as ``update_referral``), each reward
        upsert (guarded as ``upsert_reward``) and each keyed task upsert (as ``create_task``).
        Subrequests are independent and idempotent: after a failure (raised here), a retry
        of the whole call repeats nothing that already happened.

        Raises:
            ValueError: a task without ``key``, or more than fits in one Composite (25).
            CrmPermanentError: as the single-purpose methods.
        """
        sobject, record_id, values = self._referral_update(referral, fields)
        reward_ups = [self._reward_upsert(f"reward{n}", e) for n, e in enumerate(rewards)]
        # Activities go on the record the referral lives on now (converted Leads take none).
        task_ups = self._task_upserts(tasks, record_id, who=sobject == "Lead")
        subs = [SubRequest("record", "PATCH", f"sobjects/{sobject}/{record_id}", values,
                           {"Sforce-Auto-Assign": "FALSE"})]
        subs += [sub for up in reward_ups + task_ups for sub in up.subrequests()]
        _fits(subs)

        def read(results: dict[str, SubResult]) -> AppliedChanges:
            self._client.raise_for(results.get("record"))
            return AppliedChanges(
                rewards={e.key: str(u.result(self._client, results)["Id"])
                         for e, u in zip(rewards, reward_ups, strict=True)},
                tasks={str(t.key): str(u.result(self._client, results)["Id"])
                       for t, u in zip(tasks, task_ups, strict=True)},
            )

        return self._client.composite(subs, read)

    def _task_upserts(self, tasks: Sequence[CrmTask], record: str, *, who: bool
                      ) -> list[Upsert]:
        """Keyed task upserts; a task naming no record goes on ``record``."""
        out = []
        for n, task in enumerate(tasks):
            if not task.key:
                raise ValueError("tasks written with a referral must be keyed (idempotent upserts)")
            body = bodies.task_body(task, self._owner_id(task.owner_id),
                                    *((task.what_id, None) if task.what_id else (record, who)))
            out.append(Upsert(f"task{n}", "Task", s.TASK_KEY, task.key, body))
        return out

    def create_task(self, task: CrmTask) -> str:
        """Create a Task; with ``task.key`` an upsert on ``Referral_Task_Key__c`` (idempotent)."""
        if not task.what_id:
            raise ValueError("a task outside a referral's changes must name its record")
        body = bodies.task_body(task, self._owner_id(task.owner_id), task.what_id)
        if task.key:
            return str(self._upsert(Upsert("task", "Task", s.TASK_KEY, task.key, body))["Id"])
        created = self._client.call(lambda sf: sf.restful("sobjects/Task/", method="POST",
                                                          json=body))
        return str((created or {})["id"])

    # -- schema ------------------------------------------------------------------------

    def ensure_schema(self, *, dry_run: bool) -> list[SchemaChange]:
        """Create or update fields, the reward object, the permission set and the Lead
        conversion mapping; returns the plan (empty when already installed)."""
        return install.ensure_schema(self._client, dry_run=dry_run)

    def schema_drift(self) -> list[SchemaChange]:
        """What ``ensure_schema`` would change (for ``doctor``); empty when in sync."""
        return install.ensure_schema(self._client, dry_run=True)


def _fits(subs: Sequence[SubRequest]) -> None:
    if len(subs) > COMPOSITE_LIMIT:
        raise ValueError(f"{len(subs)} subrequests do not fit one Composite call")
