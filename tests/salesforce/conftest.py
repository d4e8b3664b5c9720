"""Fixtures for the Salesforce adapter tests: a ``responses``-backed org double, an adapter
with direct (access token) auth and recorded sleeps, and builders for referrals."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import responses

from referral_sync.models import (
    Milestone,
    Referee,
    Referral,
    Referrer,
    RewardEntry,
    RoutingDecision,
)
from referral_sync.program.schema import CrmMapping
from referral_sync.salesforce import SalesforceClient, SalesforceCrm
from referral_sync.salesforce.auth import connect
from referral_sync.settings import Settings
from tests.salesforce.fake_org import INSTANCE, ORG_ID, FakeOrg

WEBHOOK_TOKEN = "hook-7f3a9c"


def make_settings(**salesforce: Any) -> Settings:
    """Settings for a Salesforce org reached with an access token."""
    values = {"instance_url": f"https://{INSTANCE}", "access_token": "00D!session",
              "org_id": ORG_ID, "webhook_token": WEBHOOK_TOKEN, "api_version": "62.0",
              **salesforce}
    return Settings(_env_file=None, crm="salesforce", salesforce=values)  # type: ignore[call-arg]


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def org(rsps: responses.RequestsMock) -> FakeOrg:
    return FakeOrg(rsps)


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_crm(sleeps: list[float], mapping: CrmMapping | None = None, **salesforce: Any
             ) -> SalesforceCrm:
    """An adapter on the double; sleeps are recorded instead of slept."""
    settings = make_settings(**salesforce).salesforce
    client = SalesforceClient(lambda session: connect(settings, session), sleep=sleeps.append,
                              timeout=settings.timeout_seconds)
    return SalesforceCrm(client, mapping or CrmMapping(),
                         clock=lambda: datetime(2026, 6, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def crm(org: FakeOrg, sleeps: list[float]) -> SalesforceCrm:
    return make_crm(sleeps)


@pytest.fixture(scope="session")
def installed_components() -> dict[tuple[str, str], Any]:
    """The metadata one real ``ensure_schema`` run leaves in an org (run once: building
    simple-salesforce's Metadata client parses a large WSDL)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        org = FakeOrg(mock)
        make_crm([]).ensure_schema(dry_run=False)
        return org.metadata.components


@pytest.fixture
def installed(org: FakeOrg, crm: SalesforceCrm,
              installed_components: dict[tuple[str, str], Any]) -> SalesforceCrm:
    """The adapter on an org where referral-sync's schema is installed."""
    org.metadata.components.update(copy.deepcopy(installed_components))
    return crm


@pytest.fixture
def people(org: FakeOrg) -> dict[str, str]:
    """A customer account with its AE, the referrer contact, a colleague and a queue."""
    ae = org.add("User", Name="Ada Exec", Email="ada@vendor.example", IsActive=True)
    csm = org.add("User", Name="Cy Success", Email="cy@vendor.example", IsActive=True)
    account = org.add("Account", Name="Globex Corporation", Type="Customer - Direct",
                      Website="https://www.globex.example/", OwnerId=ae,
                      CreatedDate="2024-01-15T10:00:00.000+0000")
    referrer = org.add("Contact", FirstName="Hank", LastName="Scorpio", Name="Hank Scorpio",
                       Email="hank@globex.example", AccountId=account, OwnerId=ae)
    org.add("Contact", LastName="Smithers", Email="smithers@globex.example", AccountId=account)
    queue = org.add("Group", Name="Referral Queue", DeveloperName="Referral_Queue", Type="Queue")
    return {"ae": ae, "csm": csm, "account": account, "referrer": referrer, "queue": queue}


def make_referral(people: dict[str, str], referral_id: str = "ref-0001", **extra: Any
                  ) -> Referral:
    """A submitted referral of Peter at Initech by the seeded referrer."""
    return Referral(
        id=referral_id,
        program="customer",
        referrer=Referrer(email="hank@globex.example", name="Hank Scorpio",
                          contact_id=people["referrer"], account_id=people["account"]),
        referee=Referee(first_name="Peter", last_name="Gibbons", email="peter@initech.example",
                        company="Initech", note="Looking to replace their TPS tooling"),
        submitted_at=datetime(2026, 6, 1, 8, 30, tzinfo=UTC),
        **extra,
    )


def make_decision(owner_id: str, **extra: Any) -> RoutingDecision:
    """A routing decision to ``owner_id``."""
    values: dict[str, Any] = {"policy_version": "2026.1", "policy_hash": "abcd1234",
                              "owner_id": owner_id, "strategy": "referrer_ae",
                              "reason": "referrer's account executive", "first_action": "call"}
    return RoutingDecision(**{**values, **extra})


def make_reward(referral_id: str, milestone: Milestone, amount: int = 200, **extra: Any
                ) -> RewardEntry:
    """An earned reward ledger entry."""
    return RewardEntry(referral_id=referral_id, milestone=milestone,
                       referrer_email="hank@globex.example", program="customer",
                       amount=Decimal(amount), tier="Bronze",
                       earned_at=datetime(2026, 6, 2, tzinfo=UTC), **extra)
