"""A store on each backend (SQLite file, PostgreSQL schema), fresh for every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from referral_sync.store import Store
from tests.store.backends import STORE_BACKENDS, store_url


@pytest.fixture(params=STORE_BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as value:
        yield value


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    opened = Store.from_url(url)
    yield opened
    opened.close()
