"""Alembic environment: runs on the connection ``Store.migrate`` hands over (inside its
transaction), or on ``sqlalchemy.url`` / ``-x url=...`` when run from the alembic CLI."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from referral_sync.store.database import create_engine
from referral_sync.store.tables import metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    # Batch mode lets later migrations alter tables on SQLite, which has no ALTER COLUMN.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url")
    if not url:
        raise SystemExit("give the store URL: alembic -x url=sqlite:///referral-sync.db ...")
    return url


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
elif context.is_offline_mode():
    # ``alembic upgrade head --sql``: print the DDL for a DBA instead of running it.
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    url = _url()
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
