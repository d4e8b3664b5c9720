"""Shared fixtures: a wired app on temporary SQLite files with a seeded local CRM and a
controllable clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from referral_sync.app import Components, build_components
from referral_sync.local.crm import LocalCrm
from referral_sync.local.seed import describe_accounts, seed
from referral_sync.settings import Settings


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path}/store.db",
        queue_url=f"sqlite:///{tmp_path}/queue.db",
        local_crm_url=f"sqlite:///{tmp_path}/crm.db",
        secret_key="test-secret",
    )


@pytest.fixture
def components(settings: Settings, clock: FakeClock) -> Iterator[Components]:
    built = build_components(settings, clock=clock)
    assert isinstance(built.crm, LocalCrm)
    seed(built.crm, now=clock())
    yield built
    built.store.close()
    built.crm.engine.dispose()


@dataclass(frozen=True)
class SeededPeople:
    """E-mail addresses of seeded contacts in known situations."""

    good_referrer: str
    good_referrer_account: dict[str, object]
    other_customer: dict[str, object]
    at_risk: str
    collections: str
    dispute: str
    trial: str
    new_customer: str
    prospect_contact: str


@pytest.fixture
def people(components: Components, clock: FakeClock) -> SeededPeople:
    assert isinstance(components.crm, LocalCrm)
    accounts = describe_accounts(components.crm)

    def tenure(a: dict[str, object]) -> int:
        since = a.get("customer_since")
        return (clock() - since).days if isinstance(since, datetime) else 0

    good = [a for a in accounts if str(a["type"]).startswith("Customer")
            and a["status"] is None and tenure(a) >= 90]
    by_status = {str(a["status"]): str(a["contact_email"]) for a in accounts if a["status"]}
    newest = min((a for a in accounts if str(a["type"]).startswith("Customer")
                  and a["status"] is None), key=tenure)
    prospect = next(a for a in accounts if a["type"] == "Prospect")
    return SeededPeople(
        good_referrer=str(good[0]["contact_email"]), good_referrer_account=good[0],
        other_customer=good[1], at_risk=by_status["at_risk"],
        collections=by_status["collections"], dispute=by_status["dispute"],
        trial=by_status["trial"], new_customer=str(newest["contact_email"]),
        prospect_contact=str(prospect["contact_email"]),
    )


def referral_payload(referrer: str, **referee: object) -> dict[str, object]:
    """A valid JSON intake body; ``referee`` overrides fields of the referee."""
    body: dict[str, object] = {
        "first_name": "Hana", "last_name": "Yusof", "email": "hana.yusof@kelp-robotics.com",
        "company": "Kelp Robotics Sdn Bhd",
    }
    body.update(referee)
    return {"referrer_email": referrer, "referee": body}
