"""Tables of the operational store: referral index, inbox, jobs, reward ledger, routing
counters, notification outbox, cursors and settings. The same schema runs on SQLite
(embedded default) and PostgreSQL (several nodes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset itself)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

referrals = sa.Table(
    "referrals",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("program", sa.String(64), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("referrer_email", sa.String(320), nullable=False, index=True),
    sa.Column("referee_email", sa.String(320), nullable=False, index=True),
    sa.Column("referee_domain", sa.String(255), nullable=False, index=True),
    sa.Column("company_key", sa.String(255), nullable=False, index=True),
    sa.Column("crm_record_id", sa.String(64), index=True),
    sa.Column("crm_opportunity_id", sa.String(64), index=True),
    sa.Column("owner_id", sa.String(64)),
    sa.Column("submitted_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("portal_code", sa.String(32), unique=True),
    sa.Column("data", sa.JSON, nullable=False),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("provider", sa.String(20), nullable=False),
    sa.Column("event_id", sa.String(200), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.UniqueConstraint("provider", "event_id", name="uq_inbox_provider_event"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("inbox_id", sa.Integer, sa.ForeignKey("inbox.id"), nullable=False, unique=True),
    sa.Column("state", sa.String(12), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("lease_owner", sa.String(100)),
    sa.Column("lease_expires_at", UtcDateTime()),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime()),
    # When a queue message last announced this job; the sweeper re-announces jobs that stay
    # pending (a lost message, a crashed producer) and those never announced.
    sa.Column("enqueued_at", UtcDateTime()),
)

reward_ledger = sa.Table(
    "reward_ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("referral_id", sa.String(40), nullable=False),
    sa.Column("milestone", sa.String(20), nullable=False),
    sa.Column("referrer_email", sa.String(320), nullable=False, index=True),
    sa.Column("program", sa.String(64), nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("earned_year", sa.Integer, nullable=False),
    sa.Column("crm_id", sa.String(64)),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("referral_id", "milestone", name="uq_reward_referral_milestone"),
)

routing_counters = sa.Table(
    "routing_counters",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("period", sa.String(20), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("referral_id", sa.String(40), index=True),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("template", sa.String(40), nullable=False),
    sa.Column("locale", sa.String(5), nullable=False),
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("sent_at", UtcDateTime()),
    sa.Column("last_error", sa.Text),
)

#: Periodic tasks: the node that moves ``last_run_at`` forward runs the task, so several
#: nodes can tick without running a sweep twice per interval.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("last_run_at", UtcDateTime(), nullable=False),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", UtcDateTime(), nullable=False),
)
