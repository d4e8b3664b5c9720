"""The store's schema comes from Alembic migrations, matches ``store/tables.py``, and can be
brought up by several processes starting at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from referral_sync.errors import ConfigurationError
from referral_sync.store import Store, migrate
from referral_sync.store.database import create_engine
from referral_sync.store.tables import metadata


def test_upgrade_builds_exactly_the_declared_schema(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    assert migrate.current_revision(store.engine) == migrate.head_revision()


def test_opening_an_up_to_date_store_again_changes_nothing(url: str, store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO cursors (name, value) VALUES ('x', :v)"),
                     {"v": "2026-11-23 09:00:00+00:00"})
    again = Store.from_url(url)
    try:
        assert again.settings.cursor("x") is not None
        assert migrate.current_revision(again.engine) == migrate.head_revision()
    finally:
        again.close()


def test_several_processes_starting_at_once_migrate_once(url: str) -> None:
    engines = [create_engine(url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(migrate.upgrade, engines))
        with engines[0].connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            lock_rows = conn.execute(
                sa.text("SELECT count(*) FROM meta WHERE key = 'routing_lock'")).scalar_one()
        assert [v[0] for v in versions] == [migrate.head_revision()]
        assert lock_rows == 1
    finally:
        for engine in engines:
            engine.dispose()


def test_a_store_made_without_migrations_is_refused_with_advice(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/old.db")
    metadata.create_all(engine)
    try:
        with pytest.raises(ConfigurationError, match="without migrations"):
            migrate.upgrade(engine)
    finally:
        engine.dispose()
