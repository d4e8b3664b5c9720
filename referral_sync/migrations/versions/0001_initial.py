"""The operational store: referral index, inbox and jobs, reward ledger, routing counters,
outbox, schedules, cursors and settings (matches ``store/tables.py``).

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True, **kw: object) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, **kw)  # type: ignore[arg-type]


def upgrade() -> None:
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    # The routing lock row exists from the start: on PostgreSQL two nodes inserting it at the
    # same moment would otherwise collide on first use.
    op.bulk_insert(meta, [{"key": "routing_lock", "value": "unlocked"}])
    op.create_table(
        "referrals",
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
        _ts("submitted_at", nullable=False, index=True),
        _ts("updated_at", nullable=False),
        sa.Column("portal_code", sa.String(32), unique=True),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        _ts("received_at", nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.UniqueConstraint("provider", "event_id", name="uq_inbox_provider_event"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("inbox_id", sa.Integer, sa.ForeignKey("inbox.id"), nullable=False,
                  unique=True),
        sa.Column("state", sa.String(12), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        _ts("next_attempt_at", nullable=False, index=True),
        sa.Column("lease_owner", sa.String(100)),
        _ts("lease_expires_at"),
        sa.Column("last_error", sa.Text),
        _ts("created_at", nullable=False),
        _ts("finished_at"),
        _ts("enqueued_at"),
    )
    op.create_table(
        "reward_ledger",
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
        _ts("updated_at", nullable=False),
        sa.UniqueConstraint("referral_id", "milestone", name="uq_reward_referral_milestone"),
    )
    op.create_table(
        "routing_counters",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("period", sa.String(20), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )
    op.create_table(
        "outbox",
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
        _ts("created_at", nullable=False),
        _ts("sent_at"),
        sa.Column("last_error", sa.Text),
    )
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(64), primary_key=True),
        _ts("last_run_at", nullable=False),
    )
    op.create_table(
        "cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        _ts("value", nullable=False),
    )


def downgrade() -> None:
    for table in ("cursors", "schedules", "outbox", "routing_counters", "reward_ledger",
                  "jobs", "inbox", "referrals", "meta"):
        op.drop_table(table)
