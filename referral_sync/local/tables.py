"""Tables of the embedded local CRM: a small Salesforce-shaped CRM stored in SQLite."""

from __future__ import annotations

import sqlalchemy as sa

from referral_sync.store.tables import UtcDateTime

metadata = sa.MetaData()

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.String(18), primary_key=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("email", sa.String(320)),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
)

accounts = sa.Table(
    "accounts", metadata,
    sa.Column("id", sa.String(18), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("domain", sa.String(255), index=True),
    sa.Column("type", sa.String(40)),
    sa.Column("customer_since", UtcDateTime()),
    sa.Column("status", sa.String(40)),
    sa.Column("usage_active", sa.Boolean),
    sa.Column("owner_id", sa.String(18)),
    sa.Column("industry", sa.String(80)),
    sa.Column("employees", sa.Integer),
    sa.Column("country", sa.String(80)),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

account_team = sa.Table(
    "account_team", metadata,
    sa.Column("account_id", sa.String(18), primary_key=True),
    sa.Column("role", sa.String(60), primary_key=True),
    sa.Column("user_id", sa.String(18), nullable=False),
)

contacts = sa.Table(
    "contacts", metadata,
    sa.Column("id", sa.String(18), primary_key=True),
    sa.Column("account_id", sa.String(18), index=True),
    sa.Column("first_name", sa.String(80)),
    sa.Column("last_name", sa.String(80), nullable=False),
    sa.Column("email", sa.String(320), index=True),
    sa.Column("referral_id", sa.String(40)),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

leads = sa.Table(
    "leads", metadata,
    sa.Column("id", sa.String(18), primary_key=True),
    sa.Column("first_name", sa.String(80)),
    sa.Column("last_name", sa.String(80), nullable=False),
    sa.Column("email", sa.String(320), index=True),
    sa.Column("domain", sa.String(255), index=True),
    sa.Column("company", sa.String(255), nullable=False),
    sa.Column("company_key", sa.String(255), index=True),
    sa.Column("phone", sa.String(40)),
    sa.Column("status", sa.String(40), nullable=False),
    sa.Column("lead_source", sa.String(40)),
    sa.Column("owner_id", sa.String(18), nullable=False),
    sa.Column("referral_id", sa.String(40), unique=True),
    sa.Column("referrer_contact_id", sa.String(18)),
    sa.Column("referrer_account_id", sa.String(18)),
    sa.Column("referral_status", sa.String(20)),
    sa.Column("disqualified_reason", sa.String(255)),
    sa.Column("routing_reason", sa.Text),
    sa.Column("policy_version", sa.String(64)),
    sa.Column("first_action", sa.String(20)),
    sa.Column("reward_status", sa.String(40)),
    sa.Column("is_converted", sa.Boolean, nullable=False, default=False),
    sa.Column("converted_account_id", sa.String(18)),
    sa.Column("converted_contact_id", sa.String(18)),
    sa.Column("converted_opportunity_id", sa.String(18)),
    sa.Column("first_touched_at", UtcDateTime()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("modified_at", UtcDateTime(), nullable=False),
)

opportunities = sa.Table(
    "opportunities", metadata,
    sa.Column("id", sa.String(18), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("account_id", sa.String(18)),
    sa.Column("stage", sa.String(40), nullable=False),
    sa.Column("amount", sa.Numeric(14, 2)),
    sa.Column("is_closed", sa.Boolean, nullable=False),
    sa.Column("is_won", sa.Boolean, nullable=False),
    sa.Column("owner_id", sa.String(18), nullable=False),
    sa.Column("referral_id", sa.String(40), index=True),
    sa.Column("lead_source", sa.String(40)),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("modified_at", UtcDateTime(), nullable=False),
)

tasks = sa.Table(
    "tasks", metadata,
    sa.Column("id", sa.String(18), primary_key=True),
    sa.Column("key", sa.String(200), unique=True),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("owner_id", sa.String(18), nullable=False),
    sa.Column("what_id", sa.String(18), nullable=False, index=True),
    sa.Column("description", sa.Text),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("due", UtcDateTime()),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

rewards = sa.Table(
    "rewards", metadata,
    sa.Column("id", sa.String(18), primary_key=True),
    sa.Column("key", sa.String(80), unique=True, nullable=False),
    sa.Column("referral_id", sa.String(40), nullable=False),
    sa.Column("milestone", sa.String(20), nullable=False),
    sa.Column("referrer_email", sa.String(320), nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("modified_at", UtcDateTime(), nullable=False),
)

#: Every record change, like a CRM's field history; feeds ``list_changes``.
changes = sa.Table(
    "changes", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("object_type", sa.String(20), nullable=False),
    sa.Column("record_id", sa.String(18), nullable=False),
    sa.Column("referral_id", sa.String(40)),
    sa.Column("field", sa.String(60), nullable=False),
    sa.Column("new_value", sa.Text),
    sa.Column("at", UtcDateTime(), nullable=False, index=True),
)

#: Opportunity stages with the metadata a CRM keeps for them (closed? won?).
STAGES: dict[str, tuple[bool, bool]] = {
    "Prospecting": (False, False),
    "Qualification": (False, False),
    "Proposal": (False, False),
    "Negotiation": (False, False),
    "Closed Won": (True, True),
    "Closed Lost": (True, False),
}

LEAD_OPEN = "Open - Not Contacted"
LEAD_WORKING = "Working - Contacted"
LEAD_QUALIFIED = "Qualified"
LEAD_UNQUALIFIED = "Closed - Not Converted"
LEAD_NURTURE = "Nurture"
