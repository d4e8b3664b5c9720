"""Test backends: a fresh SQLite file, a fresh PostgreSQL schema, or a fresh Redis queue name
per test. PostgreSQL and Redis come from ``REFERRAL_SYNC_TEST_POSTGRES_URL`` and
``REFERRAL_SYNC_TEST_REDIS_URL``; without them those tests are skipped, saying so."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

POSTGRES_ENV = "REFERRAL_SYNC_TEST_POSTGRES_URL"
REDIS_ENV = "REFERRAL_SYNC_TEST_REDIS_URL"

#: ``store_url`` parameters: every store test runs on both.
STORE_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def _env_or_skip(name: str, example: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set (e.g. {example}); this backend is not tested here")
    return value


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections use a brand-new schema, dropped afterwards."""
    base = _env_or_skip(POSTGRES_ENV, "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    schema = f"rs_test_{secrets.token_hex(5)}"
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL on ``backend`` ("sqlite" or "postgres")."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/store.db"
        return
    with postgres_schema_url() as url:
        yield url


@contextmanager
def redis_queue_url() -> Iterator[str]:
    """A Redis queue URL with a queue name of its own; its keys are deleted afterwards."""
    from referral_sync.queue import build_huey

    base = _env_or_skip(REDIS_ENV, "redis://127.0.0.1:6379/15")
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}queue=rs-test-{secrets.token_hex(5)}"
    try:
        yield url
    finally:
        huey = build_huey(url)
        huey.storage.flush_all()
        huey.storage.close()
