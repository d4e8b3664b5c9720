"""End to end with the real composition: ``build_components`` with the HubSpot adapter on the
loopback double, the Flask app's ``/webhooks/hubspot``, the store's inbox and the worker.
A referral is submitted, qualified and won in HubSpot; webhook batches are redelivered and
reordered; the outcome is one deal, one reward per milestone, each with the notice that
told the referrer, and no duplicate tasks; a whole life costs at most 8 API calls."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from pydantic import SecretStr

from referral_sync.app import Components, build_components
from referral_sync.hubspot.signatures import sign_v3
from referral_sync.models import ReferralStatus
from referral_sync.service import Submission
from referral_sync.settings import HubSpotSettings, Settings
from tests.conftest import FakeClock
from tests.hubspot.conftest import FakeTime, Seeded, make_crm
from tests.hubspot.double import HubSpotDouble
from tests.hubspot.double.objects import update
from tests.hubspot.test_lifecycle import delivery
from webhooks import create_app

BASE = "https://hooks.example.com"
SECRET = "app-client-secret"


@pytest.fixture
def wired(double: HubSpotDouble, seeded: Seeded, clock: FakeClock, fake_time: FakeTime,
          tmp_path: Path) -> Iterator[Components]:
    settings = Settings(
        _env_file=None, crm="hubspot", database_url=f"sqlite:///{tmp_path}/store.db",
        queue_url=f"sqlite:///{tmp_path}/queue.db", public_base_url=BASE, secret_key="k",
        hubspot=HubSpotSettings(access_token=SecretStr("unused"), client_secret=SecretStr(SECRET),
                                app_id="1160452", portal_id="62515"))
    components = build_components(settings, clock=clock, crm=make_crm(double, clock, fake_time))
    yield components
    components.store.close()


def deliver(client: FlaskClient, clock: FakeClock, items: list[dict[str, Any]]) -> int:
    raw = json.dumps(items).encode()
    stamp = str(int(clock().timestamp() * 1000))
    headers = {"X-HubSpot-Signature-v3": sign_v3(SECRET, "POST", BASE + "/webhooks/hubspot",
                                                 raw, stamp),
               "X-HubSpot-Request-Timestamp": stamp, "Content-Type": "application/json"}
    return client.post("/webhooks/hubspot", data=raw, headers=headers).status_code


def change(n: int, clock: FakeClock, kind: str, object_id: str, prop: str, value: str,
           **extra: Any) -> dict[str, Any]:
    return {"eventId": n, "portalId": 62515, "appId": 1160452, "subscriptionId": 1,
            "occurredAt": int(clock().timestamp() * 1000), "subscriptionType": kind,
            "attemptNumber": 0, "objectId": int(object_id), "propertyName": prop,
            "propertyValue": value, "changeSource": "CRM_UI", "sourceId": "userId:52530071",
            **extra}


def test_submit_qualify_win_with_redeliveries(wired: Components, double: HubSpotDouble,
                                              clock: FakeClock) -> None:
    rng = random.Random(11)
    result = wired.service.submit(Submission.model_validate({
        "referrer_email": "maria@acme.example",
        "referee": {"first_name": "Hana", "last_name": "Yusof",
                    "email": "hana@kelp-two.example", "company": "Kelp Two Sdn Bhd"}}))
    assert result.record is not None
    contact = result.record.record_id
    client = create_app(wired.settings, components=wired).test_client()

    clock.advance(hours=2)
    update(double.portal, "contacts", contact, {"properties": {"referral_status": "qualified"}})
    qualified = change(1, clock, "contact.propertyChange", contact, "referral_status",
                       "qualified")
    # HubSpot's batches: up to 100 events, other records' news among ours, shuffled, repeated.
    assert deliver(client, clock, delivery(rng, clock(), [qualified], 100)) == 204
    wired.worker.drain()
    referral = wired.store.referrals.get(result.referral.id)
    assert referral is not None and referral.status is ReferralStatus.QUALIFIED
    deal = referral.crm_opportunity_id
    assert deal is not None

    clock.advance(days=10)
    update(double.portal, "deals", deal, {"properties": {"dealstage": "closedwon",
                                                         "amount": "40000"}})
    won = change(2, clock, "deal.propertyChange", deal, "dealstage", "closedwon")
    echo = change(3, clock, "contact.propertyChange", contact, "referral_status", "submitted",
                  changeSource="INTEGRATION", sourceId="1160452")  # our write at intake
    assert deliver(client, clock, delivery(rng, clock(), [echo, won], 300)
                   + [dict(qualified, attemptNumber=4)]) == 204
    assert deliver(client, clock, [dict(won, attemptNumber=5)]) == 204
    wired.worker.drain()

    referral = wired.store.referrals.get(result.referral.id)
    assert referral is not None and referral.status is ReferralStatus.CLOSED_WON
    # The contact keeps what the AE set; the deal carries the referral from qualification on.
    assert double.portal.records["contacts"][contact].properties["referral_status"] == "qualified"
    assert [d.id for d in double.portal.records["deals"].values()
            if d.properties.get("referral_id") == referral.id] == [deal]
    [reward_type] = double.portal.schemas
    rewards = {r.properties["reward_key"]: r.properties
               for r in double.portal.records[reward_type].values()}
    assert sorted(rewards) == [f"{referral.id}:closed_won", f"{referral.id}:qualified"]
    won_reward = rewards[f"{referral.id}:closed_won"]
    assert won_reward["referrer_notice"].startswith("Referrer notified:")
    assert "USD 1,000.00" in won_reward["referrer_notice"]
    assert "Hana" in rewards[f"{referral.id}:qualified"]["referrer_notice"]
    task_keys = sorted(t.properties.get("referral_task_key", "")
                       for t in double.portal.records["tasks"].values())
    assert task_keys == [f"notice:{referral.id}:submitted", f"{referral.id}:first-action"]
    told = wired.store.outbox.messages(referral_id=referral.id)
    assert [(m.template, m.recipient) for m in told] == [
        ("submitted", "maria@acme.example"), ("qualified", "maria@acme.example"),
        ("closed_won", "maria@acme.example")]


#: HubSpot API calls per phase of one referral's life through the real service (DESIGN.md
#: §6 asks ≤ 8 for the whole life; referral_sync/hubspot/adapter.py says where each goes).
#: A fresh process also reads the owner list and the "Referrer" label id at its first intake,
#: the reward object's id and the deal pipelines at its first qualification.
WARM = {"intake": 4, "qualified": 2, "won": 2}
COLD = {"intake": WARM["intake"] + 2, "qualified": WARM["qualified"] + 2, "won": WARM["won"]}


def lifecycle_calls(wired: Components, double: HubSpotDouble, client: FlaskClient,
                    clock: FakeClock, email: str, first: int) -> dict[str, int]:
    """Submit, qualify and win one referral (each webhook delivered twice); calls per phase."""
    calls, counts = wired.crm.api_calls, {}
    before = calls()
    result = wired.service.submit(Submission.model_validate({
        "referrer_email": "maria@acme.example", "intro_strength": "strong",
        "referee": {"first_name": "Hana", "last_name": "Yusof", "email": email,
                    "company": f"{email.split('@')[1]} Sdn Bhd"}}))
    assert result.record is not None
    contact = result.record.record_id
    counts["intake"], before = calls() - before, calls()
    clock.advance(hours=2)
    update(double.portal, "contacts", contact, {"properties": {"referral_status": "qualified"}})
    event = change(first, clock, "contact.propertyChange", contact, "referral_status",
                   "qualified")
    assert deliver(client, clock, [event, dict(event, attemptNumber=1)]) == 204
    wired.worker.drain()
    counts["qualified"], before = calls() - before, calls()
    referral = wired.store.referrals.get(result.referral.id)
    assert referral is not None and referral.crm_opportunity_id is not None
    clock.advance(days=10)
    update(double.portal, "deals", referral.crm_opportunity_id,
           {"properties": {"dealstage": "closedwon", "amount": "40000"}})
    event = change(first + 1, clock, "deal.propertyChange", referral.crm_opportunity_id,
                   "dealstage", "closedwon")
    assert deliver(client, clock, [event, dict(event, attemptNumber=1)]) == 204
    wired.worker.drain()
    counts["won"] = calls() - before
    referral = wired.store.referrals.get(result.referral.id)
    assert referral is not None and referral.status is ReferralStatus.CLOSED_WON
    return counts


def test_api_calls_per_lifecycle_in_a_cold_and_a_warm_process(
        wired: Components, double: HubSpotDouble, clock: FakeClock) -> None:
    client = create_app(wired.settings, components=wired).test_client()
    cold = lifecycle_calls(wired, double, client, clock, "hana@kelp-two.example", 1)
    warm = lifecycle_calls(wired, double, client, clock, "ivan@orca-three.example", 3)
    assert all(cold[phase] <= COLD[phase] for phase in COLD), cold
    assert all(warm[phase] <= WARM[phase] for phase in WARM), warm
    assert sum(warm.values()) <= 8 and sum(cold.values()) <= 12
    tasks = [t.properties.get("referral_task_key") for t in double.portal.records["tasks"].values()]
    assert len(tasks) == len(set(tasks)) == 4  # first action and submission notice, each
    [reward_type] = double.portal.schemas
    notices = [r.properties.get("referrer_notice", "")
               for r in double.portal.records[reward_type].values()]
    assert len(notices) == 4 and all(n.startswith("Referrer notified:") for n in notices)
