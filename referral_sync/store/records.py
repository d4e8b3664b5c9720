"""Referral index, reward ledger, routing counters, outbox, cursors and settings rows."""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from referral_sync.errors import ConcurrentUpdate
from referral_sync.models import Referral, ReferralStatus, RewardEntry, RewardState
from referral_sync.store.tables import (
    cursors,
    meta,
    outbox,
    referrals,
    reward_ledger,
    routing_counters,
)

_QUALIFIED_OR_LATER = [
    ReferralStatus.QUALIFIED, ReferralStatus.OPPORTUNITY,
    ReferralStatus.CLOSED_WON, ReferralStatus.CLOSED_LOST,
]


class Referrals:
    """The local index of referrals: id ↔ CRM records, status, owner, history."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def save(self, referral: Referral, now: datetime, *, company_key: str = "",
             portal_code: str | None = None, expected: ReferralStatus | None = None) -> None:
        """Insert or update ``referral``; with ``expected``, update only while the stored
        status is still that (compare-and-set).

        Raises:
            ConcurrentUpdate: the stored status is no longer ``expected``.
        """
        values = {
            "program": referral.program,
            "status": referral.status.value,
            "referrer_email": str(referral.referrer.email).lower(),
            "referee_email": str(referral.referee.email).lower(),
            "referee_domain": referral.referee.domain,
            "crm_record_id": referral.crm_record_id,
            "crm_opportunity_id": referral.crm_opportunity_id,
            "owner_id": referral.owner_id,
            "updated_at": now,
            "data": referral.model_dump(mode="json"),
        }
        where = referrals.c.id == referral.id
        if expected is not None:
            where = sa.and_(where, referrals.c.status == expected.value)
        with self._engine.begin() as conn:
            updated = conn.execute(referrals.update().where(where).values(**values)).rowcount
            if not updated and expected is not None:
                raise ConcurrentUpdate(f"referral {referral.id} changed meanwhile")
            if not updated:
                conn.execute(referrals.insert().values(
                    id=referral.id, submitted_at=referral.submitted_at, company_key=company_key,
                    portal_code=portal_code, **values,
                ))

    def get(self, referral_id: str) -> Referral | None:
        """The referral with ``referral_id``."""
        return self._one(referrals.c.id == referral_id)

    def by_record(self, record_id: str) -> Referral | None:
        """The referral whose lead/contact or opportunity/deal is ``record_id``."""
        return self._one(sa.or_(referrals.c.crm_record_id == record_id,
                                referrals.c.crm_opportunity_id == record_id))

    def _one(self, where: sa.ColumnElement[bool]) -> Referral | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(referrals.c.data).where(where)).first()
        return Referral.model_validate(row.data) if row else None

    def with_status(self, statuses: list[ReferralStatus]) -> list[Referral]:
        """Referrals currently in one of ``statuses``, oldest first (SLA checks)."""
        query = (sa.select(referrals.c.data)
                 .where(referrals.c.status.in_([s.value for s in statuses]))
                 .order_by(referrals.c.submitted_at))
        with self._engine.connect() as conn:
            return [Referral.model_validate(r.data) for r in conn.execute(query)]

    def list(self, *, referrer_email: str | None = None,
             limit: int | None = None) -> list[Referral]:
        """Referrals, newest first, optionally of one referrer."""
        query = sa.select(referrals.c.data).order_by(referrals.c.submitted_at.desc())
        if referrer_email:
            query = query.where(referrals.c.referrer_email == referrer_email.lower())
        if limit:
            query = query.limit(limit)
        with self._engine.connect() as conn:
            return [Referral.model_validate(r.data) for r in conn.execute(query)]

    def count_by_referrer_since(self, referrer_email: str, since: datetime) -> int:
        """Referrals the referrer submitted at or after ``since`` (velocity)."""
        with self._engine.connect() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).where(
                    referrals.c.referrer_email == referrer_email.lower(),
                    referrals.c.submitted_at >= since,
                )
            ).scalar_one())

    def other_referrers_of(self, referee_email: str, referrer_email: str) -> int:
        """How many other referrers already referred this person."""
        with self._engine.connect() as conn:
            return int(conn.execute(
                sa.select(sa.func.count(sa.distinct(referrals.c.referrer_email))).where(
                    referrals.c.referee_email == referee_email.lower(),
                    referrals.c.referrer_email != referrer_email.lower(),
                )
            ).scalar_one())

    def qualified_count(self, referrer_email: str, *, exclude_id: str = "") -> int:
        """The referrer's referrals that reached qualification (tier basis)."""
        with self._engine.connect() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).where(
                    referrals.c.referrer_email == referrer_email.lower(),
                    referrals.c.id != exclude_id,
                    referrals.c.status.in_([s.value for s in _QUALIFIED_OR_LATER]),
                )
            ).scalar_one())

    def earlier(self, email: str, domain: str | None, company_key: str,
                since: datetime) -> builtins.list[Referral]:
        """Earlier live referrals matching e-mail, domain or company, since ``since``."""
        match = [referrals.c.referee_email == email.lower()]
        if domain:
            match.append(referrals.c.referee_domain == domain)
        if company_key:
            match.append(referrals.c.company_key == company_key)
        query = sa.select(referrals.c.data).where(
            sa.or_(*match), referrals.c.submitted_at >= since,
            referrals.c.status.notin_([ReferralStatus.DUPLICATE.value,
                                       ReferralStatus.INELIGIBLE.value]),
        )
        with self._engine.connect() as conn:
            return [Referral.model_validate(r.data) for r in conn.execute(query)]

    def by_portal_code(self, code: str) -> Referral | None:
        """The referral whose landing-page code is ``code``."""
        return self._one(referrals.c.portal_code == code)


class Ledger:
    """The reward ledger: one row per (referral, milestone), never two."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def record(self, entry: RewardEntry, now: datetime) -> bool:
        """Insert ``entry``; False (and nothing written) if that milestone is already there."""
        try:
            with self._engine.begin() as conn:
                conn.execute(reward_ledger.insert().values(
                    referral_id=entry.referral_id, milestone=entry.milestone.value,
                    referrer_email=entry.referrer_email.lower(), program=entry.program,
                    amount=entry.amount, currency=entry.currency, state=entry.state.value,
                    earned_year=entry.earned_at.year, crm_id=entry.crm_id,
                    data=entry.model_dump(mode="json"), updated_at=now,
                ))
        except sa.exc.IntegrityError:
            return False
        return True

    def update(self, entry: RewardEntry, now: datetime) -> None:
        """Write state and CRM id changes of an existing entry."""
        with self._engine.begin() as conn:
            conn.execute(
                reward_ledger.update()
                .where(reward_ledger.c.referral_id == entry.referral_id,
                       reward_ledger.c.milestone == entry.milestone.value)
                .values(state=entry.state.value, crm_id=entry.crm_id, amount=entry.amount,
                        data=entry.model_dump(mode="json"), updated_at=now)
            )

    def entries(self, *, referral_id: str | None = None, referrer_email: str | None = None,
                states: list[RewardState] | None = None) -> list[RewardEntry]:
        """Ledger entries, optionally for one referral, one referrer and/or some states."""
        query = sa.select(reward_ledger.c.data).order_by(reward_ledger.c.id)
        if states:
            query = query.where(reward_ledger.c.state.in_([s.value for s in states]))
        if referral_id:
            query = query.where(reward_ledger.c.referral_id == referral_id)
        if referrer_email:
            query = query.where(reward_ledger.c.referrer_email == referrer_email.lower())
        with self._engine.connect() as conn:
            return [RewardEntry.model_validate(r.data) for r in conn.execute(query)]

    def earned_in_year(self, referrer_email: str, year: int) -> Decimal:
        """What the referrer earned (not reversed) in calendar ``year``, for the annual cap."""
        with self._engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(reward_ledger.c.amount), 0)).where(
                    reward_ledger.c.referrer_email == referrer_email.lower(),
                    reward_ledger.c.earned_year == year,
                    reward_ledger.c.state != RewardState.REVERSED.value,
                )
            ).scalar_one()
        return Decimal(total)


class Counters:
    """Routing counters (round robin pointers, caps per period), changed atomically."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    @contextmanager
    def locked(self) -> Iterator[CounterSession]:
        """A transaction holding the routing lock: read, decide, increment, commit.

        The first statement writes the lock row, which takes SQLite's database write lock or a
        PostgreSQL row lock, so two nodes can never both read the same round-robin pointer.
        """
        with self._engine.begin() as conn:
            bumped = conn.execute(
                meta.update().where(meta.c.key == "routing_lock").values(value="locked")
            ).rowcount
            if not bumped:
                conn.execute(meta.insert().values(key="routing_lock", value="locked"))
            yield CounterSession(conn)


@dataclass
class CounterSession:
    """Counter reads and writes inside ``Counters.locked``."""

    conn: sa.Connection

    def read(self, period: str) -> dict[str, int]:
        """All counters of ``period`` ("total", or a cap period label like "2026-11")."""
        rows = self.conn.execute(
            sa.select(routing_counters.c.key, routing_counters.c.value)
            .where(routing_counters.c.period == period)
        )
        return {r.key: r.value for r in rows}

    def increment(self, period: str, keys: dict[str, int]) -> None:
        """Add ``keys[k]`` to each counter of ``period``."""
        for key, amount in keys.items():
            updated = self.conn.execute(
                routing_counters.update()
                .where(routing_counters.c.key == key, routing_counters.c.period == period)
                .values(value=routing_counters.c.value + amount)
            ).rowcount
            if not updated:
                self.conn.execute(
                    routing_counters.insert().values(key=key, period=period, value=amount)
                )


@dataclass(frozen=True)
class OutboxMessage:
    """A rendered notification waiting for (or done with) delivery."""

    key: str
    referral_id: str | None
    channel: str
    template: str
    locale: str
    recipient: str
    subject: str
    body: str
    state: str = "pending"
    id: int | None = None


class Outbox:
    """Loop-closure messages; the unique key makes each notice happen once."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def add(self, message: OutboxMessage, now: datetime) -> bool:
        """Queue ``message``; False if a message with its key exists already."""
        try:
            with self._engine.begin() as conn:
                conn.execute(outbox.insert().values(
                    key=message.key, referral_id=message.referral_id, channel=message.channel,
                    template=message.template, locale=message.locale,
                    recipient=message.recipient, subject=message.subject, body=message.body,
                    state=message.state, created_at=now,
                ))
        except sa.exc.IntegrityError:
            return False
        return True

    def messages(self, *, referral_id: str | None = None,
                 state: str | None = None) -> list[OutboxMessage]:
        """Messages, oldest first, filtered by referral and/or state."""
        query = sa.select(outbox).order_by(outbox.c.id)
        if referral_id:
            query = query.where(outbox.c.referral_id == referral_id)
        if state:
            query = query.where(outbox.c.state == state)
        with self._engine.connect() as conn:
            return [OutboxMessage(
                id=r.id, key=r.key, referral_id=r.referral_id, channel=r.channel,
                template=r.template, locale=r.locale, recipient=r.recipient,
                subject=r.subject, body=r.body, state=r.state,
            ) for r in conn.execute(query)]

    def mark(self, message_id: int, state: str, now: datetime, error: str | None = None) -> None:
        """Record a delivery outcome."""
        with self._engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.id == message_id).values(
                state=state, sent_at=now if state == "sent" else None, last_error=error))


class Settings:
    """Small persistent values: reconcile cursors and the generated secret key."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def secret_key(self) -> str:
        """The secret generated on first run (used when none is configured)."""
        with self._engine.begin() as conn:
            row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "secret_key")).first()
            if row:
                return str(row.value)
            value = secrets.token_urlsafe(32)
            conn.execute(meta.insert().values(key="secret_key", value=value))
            return value

    def cursor(self, name: str) -> datetime | None:
        """The reconcile cursor ``name``."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(cursors.c.value).where(cursors.c.name == name)).first()
        return row.value if row else None

    def set_cursor(self, name: str, value: datetime) -> None:
        """Move the reconcile cursor ``name`` to ``value``."""
        with self._engine.begin() as conn:
            if not conn.execute(cursors.update().where(cursors.c.name == name)
                                .values(value=value)).rowcount:
                conn.execute(cursors.insert().values(name=name, value=value))
