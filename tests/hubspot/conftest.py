"""Fixtures for the HubSpot adapter tests: one loopback double per session (fresh portal per
test), an adapter pointed at it with a fake clock and recorded sleeps, and a seeded portal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from referral_sync.hubspot.adapter import HubSpotCrm
from referral_sync.hubspot.client import HubSpotClient
from referral_sync.hubspot.schema import RewardMode
from referral_sync.program.schema import CrmMapping
from tests.conftest import FakeClock
from tests.hubspot.double import TOKEN, HubSpotDouble, Portal
from tests.hubspot.double.objects import link


@dataclass
class FakeTime:
    """Monotonic time that only moves when something sleeps; every sleep is recorded."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="session")
def hubspot_server() -> Iterator[HubSpotDouble]:
    double = HubSpotDouble()
    double.start()
    yield double
    double.stop()


@pytest.fixture
def double(hubspot_server: HubSpotDouble, clock: FakeClock) -> HubSpotDouble:
    hubspot_server.reset(clock=clock)
    return hubspot_server


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_crm(double: HubSpotDouble, clock: FakeClock, fake_time: FakeTime, *,
             mapping: CrmMapping | None = None, reward_mode: RewardMode = "auto",
             token: str = TOKEN, timeout: float = 5.0, **kwargs: Any) -> HubSpotCrm:
    """An adapter on the double, sleeping on ``fake_time`` (never really)."""
    client = HubSpotClient(access_token=token, base_url=double.url, timeout=timeout,
                           clock=clock, sleep=fake_time.sleep, transport_backoff=0.0,
                           **kwargs)
    return HubSpotCrm(client, mapping or CrmMapping(), reward_mode=reward_mode,
                      portal_id="62515", monotonic=fake_time.monotonic, sleep=fake_time.sleep,
                      index_lag=timedelta(seconds=30))


@pytest.fixture
def crm(double: HubSpotDouble, clock: FakeClock, fake_time: FakeTime) -> HubSpotCrm:
    return make_crm(double, clock, fake_time)


@dataclass(frozen=True)
class Seeded:
    """Ids of the seeded portal's records."""

    acme: str
    maria: str
    brightline: str
    ben: str
    kelp: str
    kelp_deal: str
    newco: str
    nina: str


def seed(portal: Portal, now: datetime) -> Seeded:
    """Owners, a customer with a referrer, an at-risk customer, a prospect in pipeline."""
    portal.add_owner("101", "aisha@vendor.example", "Aisha", "Rahman", user_id="9001")
    portal.add_owner("102", "daniel@vendor.example", "Daniel", "Tan", user_id="9002")
    portal.add_owner("103", "gone@vendor.example", "Former", "Rep", user_id="9003",
                     archived=True)
    old = now - timedelta(days=400)
    acme = portal.seed("companies", created=old, name="Acme Widgets Inc.",
                       domain="acme.example", lifecyclestage="customer", hubspot_owner_id="101",
                       hs_lifecyclestage_customer_date="2025-06-01T00:00:00.000Z")
    maria = portal.seed("contacts", created=old, email="maria@acme.example", firstname="Maria",
                        lastname="Lopez", lifecyclestage="customer", hubspot_owner_id="101")
    link(portal, "contacts", maria.id, "companies", acme.id, "HUBSPOT_DEFINED", 1)
    brightline = portal.seed("companies", created=old, name="Brightline", domain="bright.example",
                             lifecyclestage="customer", hubspot_owner_id="103",
                             referral_account_status="at_risk")
    ben = portal.seed("contacts", created=old, email="ben@bright.example", firstname="Ben",
                      lastname="Ong", lifecyclestage="customer")
    link(portal, "contacts", ben.id, "companies", brightline.id, "HUBSPOT_DEFINED", 1)
    kelp = portal.seed("companies", created=old, name="Kelp Robotics Sdn Bhd",
                       domain="kelp.example", lifecyclestage="lead")
    kelp_deal = portal.seed("deals", created=old, dealname="Kelp pilot", pipeline="default",
                            dealstage="qualifiedtobuy", hs_is_closed="false")
    link(portal, "deals", kelp_deal.id, "companies", kelp.id, "HUBSPOT_DEFINED", 341)
    newco = portal.seed("companies", created=now - timedelta(days=20), name="Newco",
                        domain="newco.example", lifecyclestage="customer")
    nina = portal.seed("contacts", created=now - timedelta(days=20), email="nina@newco.example",
                       firstname="Nina", lastname="Ng")
    link(portal, "contacts", nina.id, "companies", newco.id, "HUBSPOT_DEFINED", 1)
    return Seeded(acme.id, maria.id, brightline.id, ben.id, kelp.id, kelp_deal.id, newco.id,
                  nina.id)


def install(double: HubSpotDouble, clock: FakeClock) -> None:
    """Install the referral schema with a throwaway adapter, then forget its requests."""
    make_crm(double, clock, FakeTime()).ensure_schema(dry_run=False)
    double.requests.clear()


@pytest.fixture
def seeded(double: HubSpotDouble, clock: FakeClock) -> Seeded:
    """A portal with the referral schema installed and the records of ``seed``."""
    install(double, clock)
    return seed(double.portal, clock())


NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
