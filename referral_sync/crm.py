"""The CRM port: the one Protocol the service talks to, and the snapshots it exchanges.

Three adapters implement it: ``referral_sync.local.LocalCrm`` (embedded default),
``referral_sync.salesforce.SalesforceCrm`` and ``referral_sync.hubspot.HubSpotCrm``. The
service never imports an adapter; the composition root (``referral_sync.app``) does.
Snapshots are what ``rules/`` reads: plain data taken from the CRM at one moment.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from referral_sync.models import (
    ChangeEvent,
    OwnerKind,
    Referral,
    ReferralStatus,
    RewardEntry,
    RoutingDecision,
)


def parse_decimal(value: object) -> Decimal | None:
    """A CRM number or currency value as Decimal (None when empty or not a number); both
    CRMs send numbers as strings at times."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


class ReferrerContext(BaseModel):
    """What the CRM knows about a referrer and their account, for eligibility and routing."""

    contact_id: str
    email: str
    name: str = ""
    account_id: str | None = None
    account_name: str | None = None
    account_domain: str | None = None
    is_paying_customer: bool = False
    account_type: str | None = None
    customer_since: datetime | None = None
    account_status: str | None = None
    usage_active: bool | None = None
    owner_id: str | None = None
    owner_active: bool = True
    account_team: dict[str, str] = Field(default_factory=dict)
    account_contact_emails: list[str] = Field(default_factory=list)
    fields: dict[str, object] = Field(default_factory=dict)


class DuplicateKind(StrEnum):
    """Why an existing CRM record makes a referral a duplicate."""

    CUSTOMER = "customer"
    OPEN_PIPELINE = "open_pipeline"
    EARLIER_REFERRAL = "earlier_referral"
    CONTACT = "contact"


class DuplicateCandidate(BaseModel):
    """An existing CRM record that matches the referee on e-mail, domain or company name."""

    kind: DuplicateKind
    matched_on: str
    record_type: str
    record_id: str
    account_id: str | None = None
    owner_id: str | None = None
    created_at: datetime | None = None
    company: str | None = None
    domain: str | None = None
    email: str | None = None


class Owner(BaseModel):
    """A CRM user or queue that can own a referral."""

    id: str
    name: str
    kind: OwnerKind = OwnerKind.USER
    email: str | None = None
    active: bool = True


class CrmRecordRef(BaseModel):
    """Where a referral lives in the CRM."""

    record_id: str
    record_type: str
    url: str | None = None


class ReferralSnapshot(BaseModel):
    """The current state of a referral's CRM records, re-read because events may be stale."""

    referral_id: str
    record_id: str
    status: ReferralStatus
    owner_id: str | None = None
    opportunity_id: str | None = None
    amount: Decimal | None = None
    disqualified_reason: str | None = None
    touched: bool = False


class CrmTask(BaseModel):
    """A to-do for a CRM user, attached to a record (``what_id`` None: the referral's own
    record, which the adapter resolves — the new record when passed to ``create_referral``)."""

    subject: str
    owner_id: str
    what_id: str | None = None
    description: str = ""
    due: datetime | None = None
    kind: str = "task"
    key: str | None = None
    #: The reward a referrer notice announces (its ledger key); a CRM may keep the notice on
    #: that reward's record instead of a task of its own (HubSpot does).
    reward_key: str | None = None


class SchemaChange(BaseModel):
    """One item of an install plan: what will be (or was) created or changed."""

    object_name: str
    item: str
    action: str
    detail: str = ""


@dataclass(frozen=True)
class IntakeLookup:
    """Everything intake reads from the CRM, asked at once so an adapter can answer in one
    call: the referrer, records matching the referee, and the owners routing may pick."""

    referrer_email: str
    referee_email: str
    #: The referee's work domain; None for free-mail and disposable addresses.
    domain: str | None
    company_key: str
    #: Leads and earlier referrals count as duplicates when created since then.
    since: datetime
    #: Owner refs the policy names (fallback, territories, pools).
    owner_refs: frozenset[str] = frozenset()
    #: Look for an existing account owning ``domain`` (lead-to-account match).
    match_account: bool = False
    #: Read the referrer's account team (routing hands referrals to a team role).
    account_team: bool = True


@dataclass(frozen=True)
class IntakeSnapshot:
    """The CRM's answer to an ``IntakeLookup``. ``owners`` holds what the adapter learned
    about owners on the way (policy refs, the referrer's AE, account team), by ref; refs
    missing from it are looked up one by one."""

    referrer: ReferrerContext | None
    duplicates: list[DuplicateCandidate]
    account_match: ReferrerContext | None = None
    owners: dict[str, Owner | None] = field(default_factory=dict)


@dataclass(frozen=True)
class AppliedChanges:
    """CRM ids of what ``apply_changes`` wrote, by reward key and by task key."""

    rewards: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class CrmPort(Protocol):
    """Everything the service needs from a CRM. Adapters translate errors into
    ``CrmPermanentError`` / ``CrmRetryableError`` and retry internally."""

    provider: str
    #: Statuses the CRM's own automation writes to the referral status field (Salesforce:
    #: ``converted``, set by the installed conversion Flow); moving there with no reward or
    #: notice to write needs no API call.
    statuses_set_by_crm: frozenset[ReferralStatus]

    def load_intake(self, lookup: IntakeLookup) -> IntakeSnapshot:
        """The referrer, duplicate candidates, the matching account and owners for one
        submission (``load_intake_one_by_one`` where the CRM cannot batch reads)."""
        ...

    def find_duplicates(
        self, email: str, domain: str | None, company_key: str, since: datetime
    ) -> list[DuplicateCandidate]:
        """Records matching the referee by e-mail, domain (None for free-mail) or normalised
        company name, created since ``since`` for leads/referrals (customers always count)."""
        ...

    def load_referrer(self, email: str) -> ReferrerContext | None:
        """The referrer's contact and account facts, or None when no contact has that e-mail."""
        ...

    def find_account_by_domain(self, domain: str) -> ReferrerContext | None:
        """An existing account owning ``domain`` (lead-to-account match), if any."""
        ...

    def get_owner(self, ref: str) -> Owner | None:
        """A user or queue by id, ``email:<address>`` or ``queue:<name>``."""
        ...

    def create_referral(self, referral: Referral, decision: RoutingDecision, *,
                        tasks: Sequence[CrmTask] = ()) -> CrmRecordRef:
        """Create (idempotently, keyed by the referral id) the referral record (Lead /
        contact) with attribution and owner, and the keyed ``tasks`` on it."""
        ...

    def update_referral(
        self, referral: Referral, *, fields: dict[str, object] | None = None
    ) -> None:
        """Write status, owner, routing and reward facts of ``referral`` to its record."""
        ...

    def read_referral(self, referral: Referral) -> ReferralSnapshot:
        """Re-read the referral's records (status, owner, opportunity, amount)."""
        ...

    def upsert_reward(self, entry: RewardEntry) -> str:
        """Create or update the reward record keyed by ``entry.key``; returns its CRM id."""
        ...

    def create_task(self, task: CrmTask) -> str:
        """Create a task (idempotent when ``task.key`` is set); returns its CRM id."""
        ...

    def apply_changes(
        self, referral: Referral, *, fields: dict[str, object] | None = None,
        rewards: Sequence[RewardEntry] = (), tasks: Sequence[CrmTask] = (),
    ) -> AppliedChanges:
        """Everything one event changes (record fields, reward upserts, keyed tasks), in as
        few calls as the CRM allows; every part is idempotent."""
        ...

    def list_changes(self, since: datetime) -> Iterator[ChangeEvent]:
        """Referral-relevant changes modified at or after ``since``, oldest first."""
        ...

    def ensure_schema(self, *, dry_run: bool) -> list[SchemaChange]:
        """Create or update custom fields/objects; returns the plan (empty when in sync)."""
        ...

    def api_calls(self) -> int:
        """How many API calls this adapter has made so far."""
        ...


def load_intake_one_by_one(crm: CrmPort, lookup: IntakeLookup) -> IntakeSnapshot:
    """``load_intake`` for CRMs that answer each read separately."""
    referrer = crm.load_referrer(lookup.referrer_email)
    duplicates = crm.find_duplicates(lookup.referee_email, lookup.domain, lookup.company_key,
                                      lookup.since)
    match = (crm.find_account_by_domain(lookup.domain)
             if lookup.match_account and lookup.domain else None)
    return IntakeSnapshot(referrer=referrer, duplicates=duplicates, account_match=match)


def on_record(task: CrmTask, record_id: str | None) -> CrmTask:
    """``task`` attached to ``record_id`` unless it names its record already."""
    if task.what_id or not record_id:
        return task
    return task.model_copy(update={"what_id": record_id})


def apply_one_by_one(
    crm: CrmPort, referral: Referral, *, fields: dict[str, object] | None = None,
    rewards: Sequence[RewardEntry] = (), tasks: Sequence[CrmTask] = (),
) -> AppliedChanges:
    """``apply_changes`` for CRMs without a multi-record call: one port call per part
    (no record update when there are no ``fields``)."""
    if fields is not None:
        crm.update_referral(referral, fields=fields)
    return AppliedChanges(
        rewards={entry.key: crm.upsert_reward(entry) for entry in rewards},
        tasks={str(task.key): crm.create_task(on_record(task, referral.crm_record_id))
               for task in tasks},
    )
