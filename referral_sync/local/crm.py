"""The embedded local CRM adapter: implements the CRM port on a SQLite database shaped like a
small Salesforce org (users and queues, accounts, contacts, leads, opportunities with stage
metadata, tasks, rewards and a change history that feeds ``list_changes``)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from referral_sync.clock import Clock
from referral_sync.crm import (
    AppliedChanges,
    CrmRecordRef,
    CrmTask,
    DuplicateCandidate,
    DuplicateKind,
    IntakeLookup,
    IntakeSnapshot,
    Owner,
    ReferralSnapshot,
    ReferrerContext,
    SchemaChange,
    apply_one_by_one,
    load_intake_one_by_one,
    on_record,
)
from referral_sync.errors import NotFound
from referral_sync.local import tables as t
from referral_sync.local.events import change_events, snapshot_status
from referral_sync.models import (
    ChangeEvent,
    OwnerKind,
    Referral,
    ReferralStatus,
    RewardEntry,
    RoutingDecision,
)
from referral_sync.program.schema import CrmMapping
from referral_sync.rules.duplicates import normalise_company
from referral_sync.store.database import create_engine

ID_PREFIX = {"lead": "00Q", "account": "001", "contact": "003", "opportunity": "006",
             "task": "00T", "user": "005", "queue": "00G", "reward": "a0R"}


def new_id(kind: str) -> str:
    """A Salesforce-shaped 15-character record id."""
    return ID_PREFIX[kind] + secrets.token_hex(6).upper()


class LocalCrm:
    """CRM port on the local SQLite CRM. ``clock`` stamps record changes."""

    provider = "local"
    statuses_set_by_crm: frozenset[ReferralStatus] = frozenset()

    def __init__(self, engine: sa.Engine, mapping: CrmMapping, clock: Clock) -> None:
        self.engine = engine
        self.mapping = mapping
        self.clock = clock
        self._calls = 0
        t.metadata.create_all(engine)

    @classmethod
    def from_url(cls, url: str, mapping: CrmMapping, clock: Clock) -> LocalCrm:
        """Open (creating if new) the local CRM database at ``url``."""
        return cls(create_engine(url), mapping, clock)

    def api_calls(self) -> int:
        """Port operations served so far (the local CRM's equivalent of API calls)."""
        return self._calls

    def _call(self) -> None:
        self._calls += 1

    # -- reads -------------------------------------------------------------------------
    def find_duplicates(self, email: str, domain: str | None, company_key: str,
                        since: datetime) -> list[DuplicateCandidate]:
        """Accounts (customer or with open pipeline), contacts and recent leads that match."""
        self._call()
        found: list[DuplicateCandidate] = []
        with self.engine.connect() as conn:
            for acc in conn.execute(sa.select(t.accounts)):
                on = self._account_match(acc, domain, company_key)
                if on:
                    found.extend(self._account_duplicates(conn, acc, on))
            for c in conn.execute(sa.select(t.contacts).where(t.contacts.c.email == email.lower())):
                found.append(DuplicateCandidate(
                    kind=DuplicateKind.CONTACT, matched_on="email", record_type="Contact",
                    record_id=c.id, account_id=c.account_id, created_at=c.created_at,
                    email=c.email))
            lead_match = [t.leads.c.email == email.lower(), t.leads.c.company_key == company_key]
            if domain:
                lead_match.append(t.leads.c.domain == domain)
            for lead in conn.execute(sa.select(t.leads).where(
                    sa.or_(*lead_match), t.leads.c.created_at >= since,
                    t.leads.c.status != t.LEAD_UNQUALIFIED)):
                on = "email" if lead.email == email.lower() else (
                    "domain" if domain and lead.domain == domain else "company")
                kind = (DuplicateKind.EARLIER_REFERRAL if lead.referral_id
                        else DuplicateKind.OPEN_PIPELINE)
                found.append(DuplicateCandidate(
                    kind=kind, matched_on=on, record_type="Lead", record_id=lead.id,
                    owner_id=lead.owner_id, created_at=lead.created_at, company=lead.company,
                    domain=lead.domain, email=lead.email))
        return found

    def _account_match(self, acc: sa.Row[tuple[object, ...]], domain: str | None,
                       company_key: str) -> str | None:
        if domain and acc.domain == domain:
            return "domain"
        if company_key and normalise_company(str(acc.name)) == company_key:
            return "company"
        return None

    def _account_duplicates(self, conn: sa.Connection, acc: sa.Row[tuple[object, ...]],
                            on: str) -> list[DuplicateCandidate]:
        base = {"matched_on": on, "account_id": acc.id, "owner_id": acc.owner_id,
                "company": acc.name, "domain": acc.domain}
        out = []
        if self._is_customer(acc.type):
            out.append(DuplicateCandidate(kind=DuplicateKind.CUSTOMER, record_type="Account",
                                          record_id=str(acc.id), created_at=acc.created_at,
                                          **base))
        for opp in conn.execute(sa.select(t.opportunities).where(
                t.opportunities.c.account_id == acc.id, t.opportunities.c.is_closed.is_(False))):
            out.append(DuplicateCandidate(kind=DuplicateKind.OPEN_PIPELINE,
                                          record_type="Opportunity", record_id=opp.id,
                                          created_at=opp.created_at, **base))
        return out

    def _is_customer(self, account_type: object) -> bool:
        return str(account_type or "").startswith(self.mapping.customer_type_prefix)

    def load_referrer(self, email: str) -> ReferrerContext | None:
        """The contact with ``email`` and its account's facts."""
        self._call()
        with self.engine.connect() as conn:
            contact = conn.execute(sa.select(t.contacts).where(
                t.contacts.c.email == email.lower())).first()
            if contact is None:
                return None
            ctx = ReferrerContext(
                contact_id=contact.id, email=contact.email,
                name=f"{contact.first_name or ''} {contact.last_name}".strip())
            if contact.account_id:
                ctx = self._with_account(conn, ctx, contact.account_id)
        return ctx

    def find_account_by_domain(self, domain: str) -> ReferrerContext | None:
        """The account whose website domain is ``domain`` (lead-to-account match)."""
        self._call()
        with self.engine.connect() as conn:
            acc = conn.execute(sa.select(t.accounts.c.id).where(
                t.accounts.c.domain == domain.lower())).first()
            if acc is None:
                return None
            return self._with_account(conn, ReferrerContext(contact_id="", email=""), acc.id)

    def _with_account(self, conn: sa.Connection, ctx: ReferrerContext,
                      account_id: str) -> ReferrerContext:
        acc = conn.execute(sa.select(t.accounts).where(t.accounts.c.id == account_id)).one()
        owner = conn.execute(sa.select(t.users).where(t.users.c.id == acc.owner_id)).first()
        team = {r.role: r.user_id for r in conn.execute(
            sa.select(t.account_team).where(t.account_team.c.account_id == account_id))}
        emails = [r.email for r in conn.execute(
            sa.select(t.contacts.c.email).where(t.contacts.c.account_id == account_id))
            if r.email]
        return ctx.model_copy(update={
            "account_id": acc.id, "account_name": acc.name, "account_domain": acc.domain,
            "is_paying_customer": self._is_customer(acc.type), "account_type": acc.type,
            "customer_since": acc.customer_since or acc.created_at,
            "account_status": acc.status, "usage_active": acc.usage_active,
            "owner_id": acc.owner_id, "owner_active": bool(owner and owner.active),
            "account_team": team, "account_contact_emails": emails,
            "fields": {"industry": acc.industry, "employees": acc.employees,
                       "country": acc.country},
        })

    def get_owner(self, ref: str) -> Owner | None:
        """A user by id or ``email:<addr>``, or a queue by ``queue:<name>``."""
        self._call()
        if ref.startswith("queue:"):
            where = sa.and_(t.users.c.kind == "queue", t.users.c.name == ref[6:])
        elif ref.startswith("email:"):
            where = t.users.c.email == ref[6:].lower()
        else:
            where = t.users.c.id == ref
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.users).where(where)).first()
        if row is None:
            return None
        return Owner(id=row.id, name=row.name, kind=OwnerKind(row.kind), email=row.email,
                     active=row.active)

    def read_referral(self, referral: Referral) -> ReferralSnapshot:
        """The lead (and opportunity, once converted) as they are now."""
        self._call()
        with self.engine.connect() as conn:
            lead = conn.execute(sa.select(t.leads).where(
                t.leads.c.referral_id == referral.id)).first()
            if lead is None:
                raise NotFound(f"no lead carries referral {referral.id}")
            opp = None
            if lead.converted_opportunity_id:
                opp = conn.execute(sa.select(t.opportunities).where(
                    t.opportunities.c.id == lead.converted_opportunity_id)).first()
        return ReferralSnapshot(
            referral_id=referral.id, record_id=lead.id,
            status=snapshot_status(lead, opp), owner_id=lead.owner_id,
            opportunity_id=opp.id if opp else None,
            amount=Decimal(opp.amount) if opp is not None and opp.amount is not None else None,
            disqualified_reason=lead.disqualified_reason,
            touched=lead.first_touched_at is not None)

    def apply_changes(
        self, referral: Referral, *, fields: dict[str, object] | None = None,
        rewards: Sequence[RewardEntry] = (), tasks: Sequence[CrmTask] = (),
    ) -> AppliedChanges:
        """Record fields, rewards and tasks of one event, one part at a time."""
        return apply_one_by_one(self, referral, fields=fields, rewards=rewards, tasks=tasks)

    def list_changes(self, since: datetime) -> Iterator[ChangeEvent]:
        """Changes recorded at or after ``since``, oldest first, as normalised events."""
        self._call()
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(t.changes).where(t.changes.c.at >= since)
                                     .order_by(t.changes.c.seq)))
        yield from change_events(rows)

    # -- writes ------------------------------------------------------------------------
    def load_intake(self, lookup: IntakeLookup) -> IntakeSnapshot:
        """The intake reads, one query each."""
        return load_intake_one_by_one(self, lookup)

    def create_referral(self, referral: Referral, decision: RoutingDecision, *,
                        tasks: Sequence[CrmTask] = ()) -> CrmRecordRef:
        """Insert the referral Lead (idempotent on the referral id) with its attribution,
        then its keyed tasks."""
        record = self._insert_lead(referral, decision)
        for task in tasks:
            self.create_task(on_record(task, record.record_id))
        return record

    def _insert_lead(self, referral: Referral, decision: RoutingDecision) -> CrmRecordRef:
        self._call()
        now = self.clock()
        with self.engine.begin() as conn:
            existing = conn.execute(sa.select(t.leads.c.id).where(
                t.leads.c.referral_id == referral.id)).first()
            if existing:
                return CrmRecordRef(record_id=existing.id, record_type="Lead")
            lead_id = new_id("lead")
            referee = referral.referee
            conn.execute(t.leads.insert().values(
                id=lead_id, first_name=referee.first_name, last_name=referee.last_name,
                email=str(referee.email).lower(), domain=referee.domain,
                company=referee.company, company_key=normalise_company(referee.company),
                phone=referee.phone, status=t.LEAD_OPEN,
                lead_source=self.mapping.lead_source_value, owner_id=decision.owner_id,
                referral_id=referral.id, referrer_contact_id=referral.referrer.contact_id,
                referrer_account_id=referral.referrer.account_id,
                referral_status=referral.status.value, routing_reason=decision.reason,
                policy_version=decision.policy_version, first_action=decision.first_action,
                is_converted=False, created_at=now, modified_at=now))
            self.log_change(conn, "lead", lead_id, referral.id, "created", "submitted", now)
        return CrmRecordRef(record_id=lead_id, record_type="Lead")

    def update_referral(self, referral: Referral, *,
                        fields: dict[str, object] | None = None) -> None:
        """Stamp owner, routing and reward facts on the Lead; our writes log no status change."""
        self._call()
        values: dict[str, object] = {"modified_at": self.clock()}
        if referral.owner_id:
            values["owner_id"] = referral.owner_id
        if referral.routing_reason:
            values["routing_reason"] = referral.routing_reason
        values.update(fields or {})
        with self.engine.begin() as conn:
            conn.execute(t.leads.update().where(t.leads.c.referral_id == referral.id)
                         .values(**values))

    def upsert_reward(self, entry: RewardEntry) -> str:
        """Create or update the reward record keyed by ``entry.key``."""
        self._call()
        now = self.clock()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(t.rewards.c.id).where(
                t.rewards.c.key == entry.key)).first()
            values = {"amount": entry.amount, "currency": entry.currency,
                      "state": entry.state.value, "modified_at": now}
            if row:
                conn.execute(t.rewards.update().where(t.rewards.c.id == row.id).values(**values))
                return str(row.id)
            reward_id = new_id("reward")
            conn.execute(t.rewards.insert().values(
                id=reward_id, key=entry.key, referral_id=entry.referral_id,
                milestone=entry.milestone.value, referrer_email=entry.referrer_email,
                **values))
            return reward_id

    def create_task(self, task: CrmTask) -> str:
        """Create a task; with ``task.key`` set, a second call returns the first task."""
        self._call()
        with self.engine.begin() as conn:
            if task.key:
                row = conn.execute(sa.select(t.tasks.c.id).where(
                    t.tasks.c.key == task.key)).first()
                if row:
                    return str(row.id)
            task_id = new_id("task")
            conn.execute(t.tasks.insert().values(
                id=task_id, key=task.key, subject=task.subject, owner_id=task.owner_id,
                what_id=_required(task.what_id), description=task.description, kind=task.kind,
                due=task.due, status="Not Started", created_at=self.clock()))
        return task_id

    def ensure_schema(self, *, dry_run: bool) -> list[SchemaChange]:
        """The local CRM ships with the referral fields built in: nothing to install."""
        self._call()
        return []

    def log_change(self, conn: sa.Connection, object_type: str, record_id: str,
             referral_id: str | None, field: str, value: str | None, at: datetime) -> None:
        conn.execute(t.changes.insert().values(
            object_type=object_type, record_id=record_id, referral_id=referral_id,
            field=field, new_value=value, at=at))



def _required(what_id: str | None) -> str:
    if not what_id:
        raise ValueError("a task outside a referral's changes must name its record")
    return what_id
