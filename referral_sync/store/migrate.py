"""Bring the store's schema to the newest migration (Alembic ``upgrade head``)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from referral_sync.errors import ConfigurationError

SCRIPT_LOCATION = "referral_sync:migrations"
#: Any constant works: it only has to be the same for every node of one deployment.
_PG_MIGRATION_LOCK = 0x5EF5_1C01


def alembic_config() -> Config:
    """The Alembic configuration of the store (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def head_revision() -> str | None:
    """The newest migration's revision id."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine) -> None:
    """Upgrade the database behind ``engine`` to head; a no-op when it is there already.

    Several processes may start at once: SQLite's ``BEGIN IMMEDIATE`` and a PostgreSQL
    advisory lock make them migrate one after the other, and the later ones find nothing
    to do.

    Raises:
        ConfigurationError: for a database with referral-sync tables but no migration
            history (made by a pre-release build); it has to be recreated.
    """
    config = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                         {"key": _PG_MIGRATION_LOCK})
        tables = set(sa.inspect(conn).get_table_names())
        if "inbox" in tables and "alembic_version" not in tables:
            raise ConfigurationError(
                "the store was created by a build without migrations; move it aside and "
                "start again (its inbox can be replayed from the CRM with `reconcile --since`)")
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
