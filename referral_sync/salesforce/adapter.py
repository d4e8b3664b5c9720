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
    Owner,
    ReferralSnapshot,
    ReferrerContext,
    SchemaChange,
)
from referral_sync.errors import CrmPermanentError
from referral_sync.models import (
    ChangeEvent,
    OwnerKind,
    Referral,
    RewardEntry,
    RoutingDecision,
)
from referral_sync.program.schema import CrmMapping
from referral_sync.salesforce import bodies, install, queries, records
from referral_sync.salesforce import schema as s
from referral_sync.salesforce.auth import connect
from referral_sync.salesforce.client import SalesforceClient, SubRequest, SubResult, query_path
from referral_sync.salesforce.faults import PROVIDER
from referral_sync.salesforce.status import StatusMapping
from referral_sync.salesforce.ttl import TtlCache
from referral_sync.salesforce.writes import Upsert
from referral_sync.settings import Settings

#: ``RoutingDecision.owner_id`` that hands the Lead to Salesforce's active assignment rule
#: (or, as ``assignment_rule:<01Q… id>``, to a specific rule).
ASSIGNMENT_RULE = "assignment_rule"
#: Subrequests per Composite call (Salesforce limit).
COMPOSITE_LIMIT = 25


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SalesforceCrm:
    """The CRM port implemented with simple-salesforce (REST, Composite, Metadata API)."""

    provider = PROVIDER
    # An Outbound Message carries the record's fields as they are when it is sent.
    events_carry_current_state = True

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
        self._owners: TtlCache[Owner | None] = TtlCache(clock, timedelta(minutes=10))
        self._domain_accounts: TtlCache[list[dict[str, Any]]] = TtlCache(
            clock, timedelta(minutes=1))
        self._account_teams = True

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

    def find_duplicates(
        self, email: str, domain: str | None, company_key: str, since: datetime
    ) -> list[DuplicateCandidate]:
        """Leads (created since ``since``), contacts, customer accounts and open
        opportunities matching the referee, in one Composite call."""
        soql = queries.duplicate_queries(email, domain, company_key, since)
        subs = [SubRequest(ref, "GET", query_path(q)) for ref, q in soql.items()]

        def read(results: dict[str, SubResult]) -> dict[str, list[dict[str, Any]]]:
            return {ref: self._client.raise_for(results.get(ref)).records() for ref in soql}

        found = self._client.composite(subs, read)
        accounts = found.get("accounts", [])
        if domain and len(accounts) < queries.DUPLICATE_LIMIT:
            # A truncated list might miss the domain's account; then ask again later.
            self._domain_accounts.put(domain.lower(), accounts)
        return records.duplicate_candidates(found, email, domain, company_key, self._mapping)

    def load_referrer(self, email: str) -> ReferrerContext | None:
        """The referrer's contact, account facts, account team and colleagues (one call)."""
        soql = queries.referrer_queries(email, self._mapping, account_team=self._account_teams)
        subs = [SubRequest(ref, "GET", query_path(q)) for ref, q in soql.items()]

        def read(results: dict[str, SubResult]) -> ReferrerContext | None:
            found = self._client.raise_for(results.get("referrer")).records()
            if not found:
                return None
            contact = found[0]
            return records.referrer_context(
                contact,
                results["colleagues"].records() if contact.get("AccountId") else [],
                self._team(results.get("team")) if contact.get("AccountId") else [],
                self._mapping,
            )

        return self._client.composite(subs, read)

    def _team(self, result: SubResult | None) -> list[dict[str, Any]]:
        if result is None:
            return []
        if not result.ok:
            code = str((result.body or [{}])[0].get("errorCode", "")) if isinstance(
                result.body, list) else ""
            if code == "INVALID_TYPE":
                # Account Teams are off in this org; stop asking.
                self._account_teams = False
                return []
            self._client.raise_for(result)
        return result.records()

    def find_account_by_domain(self, domain: str) -> ReferrerContext | None:
        """The account that owns ``domain`` (lead-to-account match), customers first."""
        fresh, accounts = self._domain_accounts.get(domain.lower())
        if not fresh or accounts is None:
            accounts = self._client.query(queries.accounts_by_domain(domain))
        account = records.best_domain_account(accounts, domain.lower(),
                                              self._mapping.customer_type_prefix)
        if account is None:
            return None
        return ReferrerContext(contact_id="", email="",
                               **records.account_context(account, self._mapping))

    def get_owner(self, ref: str) -> Owner | None:
        """A user or queue by id, ``email:<address>`` or ``queue:<name>`` (memoised)."""
        fresh, owner = self._owners.get(ref)
        if fresh:
            return owner
        try:
            soql = queries.owner_query(ref)
        except ValueError:
            return None
        found = self._client.query(soql)
        found.sort(key=lambda r: r.get("IsActive") is False)
        owner = None
        if found:
            row = found[0]
            queue = str(row["Id"]).startswith("00G")
            owner = Owner(id=row["Id"], name=str(row.get("Name") or ""),
                          kind=OwnerKind.QUEUE if queue else OwnerKind.USER,
                          email=row.get("Email"), active=row.get("IsActive") is not False)
        self._owners.put(ref, owner)
        return owner

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

    def create_referral(self, referral: Referral, decision: RoutingDecision) -> CrmRecordRef:
        """Upsert the referral Lead by ``Referral_Id__c`` with owner and attribution.

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
        row = self._upsert(Upsert("lead", "Lead", s.REFERRAL_ID, referral.id, body,
                                  {"Sforce-Auto-Assign": assign}))
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
        task_ups = []
        for n, task in enumerate(tasks):
            if not task.key:
                raise ValueError("apply_changes needs keyed tasks (idempotent upserts)")
            task_ups.append(Upsert(f"task{n}", "Task", s.TASK_KEY, task.key,
                                   bodies.task_body(task, self._owner_id(task.owner_id))))
        subs = [SubRequest("record", "PATCH", f"sobjects/{sobject}/{record_id}", values,
                           {"Sforce-Auto-Assign": "FALSE"})]
        subs += [sub for up in reward_ups + task_ups for sub in up.subrequests()]
        if len(subs) > COMPOSITE_LIMIT:
            raise ValueError(f"{len(subs)} subrequests do not fit one Composite call")

        def read(results: dict[str, SubResult]) -> AppliedChanges:
            self._client.raise_for(results.get("record"))
            return AppliedChanges(
                rewards={e.key: str(u.result(self._client, results)["Id"])
                         for e, u in zip(rewards, reward_ups, strict=True)},
                tasks={str(t.key): str(u.result(self._client, results)["Id"])
                       for t, u in zip(tasks, task_ups, strict=True)},
            )

        return self._client.composite(subs, read)

    def create_task(self, task: CrmTask) -> str:
        """Create a Task; with ``task.key`` an upsert on ``Referral_Task_Key__c`` (idempotent)."""
        body = bodies.task_body(task, self._owner_id(task.owner_id))
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
