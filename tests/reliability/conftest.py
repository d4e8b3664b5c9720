"""Reliability fixtures: a store URL per backend, a hand-moved clock, and a world of
components over a fault-injecting CRM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.world import Clock, World, build_world
from tests.store.backends import STORE_BACKENDS, store_url


@pytest.fixture(params=STORE_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(backend: str, tmp_path: Path) -> Iterator[str]:
    with store_url(backend, tmp_path) as value:
        yield value


@pytest.fixture
def wclock() -> Clock:
    return Clock()


@pytest.fixture
def world(url: str, tmp_path: Path, wclock: Clock) -> Iterator[World]:
    built = build_world(url, tmp_path, wclock)
    yield built
    built.components.close()
    built.local.engine.dispose()
