"""The operational store (DESIGN.md §5): SQLite by default, PostgreSQL for several nodes."""

from __future__ import annotations

import sqlalchemy as sa

from referral_sync.store import migrate
from referral_sync.store.database import create_engine
from referral_sync.store.inbox import DeadLetter, Inbox, Job, JobState, ReceiveResult
from referral_sync.store.records import (
    Counters,
    CounterSession,
    Ledger,
    Outbox,
    OutboxMessage,
    Referrals,
    Settings,
)
from referral_sync.store.schedules import Schedules

__all__ = [
    "CounterSession", "DeadLetter", "Job", "JobState", "OutboxMessage", "ReceiveResult", "Store",
]


class Store:
    """One handle on the store, grouping its parts by concept."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.referrals = Referrals(engine)
        self.inbox = Inbox(engine)
        self.ledger = Ledger(engine)
        self.counters = Counters(engine)
        self.outbox = Outbox(engine)
        self.settings = Settings(engine)
        self.schedules = Schedules(engine)

    @classmethod
    def from_url(cls, url: str) -> Store:
        """Open the store at ``url``, creating or upgrading its schema (migrations)."""
        store = cls(create_engine(url))
        store.migrate()
        return store

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration (idempotent, safe on several nodes)."""
        migrate.upgrade(self.engine)

    def ping(self) -> None:
        """Raise if the database cannot be reached (for /readyz and doctor)."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()
