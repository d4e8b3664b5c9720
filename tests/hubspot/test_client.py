"""The HubSpot transport against the loopback double: HubSpot's error bodies become our two
error types whichever SDK module raised them, 429s follow their policy, POSTs are retried on
5xx, timeouts apply to every call, and every request is counted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from referral_sync.errors import CrmPermanentError, CrmRetryableError
from referral_sync.hubspot.client import HubSpotClient
from referral_sync.hubspot.translate import existing_id, is_not_found
from tests.conftest import FakeClock
from tests.hubspot.conftest import FakeTime
from tests.hubspot.double import TOKEN, HubSpotDouble, rate_limit_body

SEARCH = {"filterGroups": [], "properties": ["email"], "limit": 10}


def make_client(double: HubSpotDouble, clock: FakeClock, fake_time: FakeTime,
                **kwargs: Any) -> HubSpotClient:
    options: dict[str, Any] = {"access_token": TOKEN, "base_url": double.url, "timeout": 5.0,
                               "clock": clock, "sleep": fake_time.sleep,
                               "transport_backoff": 0.0, **kwargs}
    return HubSpotClient(**options)


@pytest.fixture
def client(double: HubSpotDouble, clock: FakeClock, fake_time: FakeTime) -> HubSpotClient:
    return make_client(double, clock, fake_time)


def create_contact(client: HubSpotClient, email: str) -> str:
    reply = client.call("contacts.create", client.objects.create, "contacts",
                        {"properties": {"email": email}})
    return str(reply.json()["id"])


# -- HubSpot's error bodies --------------------------------------------------------------------
def test_400_validation_error_is_permanent_and_names_the_problem(client: HubSpotClient) -> None:
    with pytest.raises(CrmPermanentError) as caught:
        client.call("contacts.create", client.objects.create, "contacts",
                    {"properties": {"no_such_property": "x"}})
    error = caught.value
    assert (error.http_status, error.code, error.provider) == (400, "VALIDATION_ERROR", "hubspot")
    assert 'Property "no_such_property" does not exist' in str(error)
    assert "correlationId" in str(error)


def test_error_messages_never_carry_email_addresses(client: HubSpotClient,
                                                    double: HubSpotDouble) -> None:
    double.inject(400, {"status": "error", "category": "VALIDATION_ERROR",
                        "message": "Email address hana@kelp.example is invalid",
                        "correlationId": "c-1"})
    with pytest.raises(CrmPermanentError) as caught:
        create_contact(client, "hana@kelp.example")
    assert "hana@kelp.example" not in str(caught.value)
    assert "<email>" in str(caught.value)


def test_401_bad_token(double: HubSpotDouble, clock: FakeClock, fake_time: FakeTime) -> None:
    client = make_client(double, clock, fake_time, access_token="pat-revoked")
    with pytest.raises(CrmPermanentError) as caught:
        client.call("owners.get_page", client.owners.get_page, limit=10)
    assert (caught.value.http_status, caught.value.code) == (401, "INVALID_AUTHENTICATION")


@pytest.mark.parametrize("api", ["objects", "properties", "labels", "schemas", "owners",
                                 "pipelines", "associations"])
def test_403_missing_scopes_from_every_sdk_module(client: HubSpotClient, double: HubSpotDouble,
                                                  api: str) -> None:
    double.inject(403, {"status": "error", "category": "MISSING_SCOPES",
                        "message": "This app hasn't been granted all required scopes to make "
                                   "this call.", "correlationId": "c-2",
                        "context": {"missingScopes": ["crm.objects.deals.write"]}})
    calls = {
        "objects": lambda: client.call("x", client.objects.get_by_id, "deals", "1"),
        "properties": lambda: client.call("x", client.properties.get_all, "deals"),
        "labels": lambda: client.call("x", client.labels.get_all, "contacts", "contacts"),
        "schemas": lambda: client.call("x", client.schemas.get_all),
        "owners": lambda: client.call("x", client.owners.get_page),
        "pipelines": lambda: client.call("x", client.pipelines.get_all, "deals"),
        "associations": lambda: client.call("x", client.associations.get_page, "contacts",
                                            "1", "deals"),
    }
    with pytest.raises(CrmPermanentError) as caught:
        calls[api]()
    assert (caught.value.http_status, caught.value.code) == (403, "MISSING_SCOPES")
    assert "missing scopes: crm.objects.deals.write" in str(caught.value)


def test_404_is_recognisable(client: HubSpotClient) -> None:
    with pytest.raises(CrmPermanentError) as caught:
        client.call("deals.get_by_id", client.objects.get_by_id, "deals", "424242")
    assert is_not_found(caught.value) and caught.value.code == "OBJECT_NOT_FOUND"


def test_409_already_exists_names_the_existing_id(client: HubSpotClient) -> None:
    first = create_contact(client, "hana@kelp.example")
    with pytest.raises(CrmPermanentError) as caught:
        create_contact(client, "HANA@kelp.example")
    assert caught.value.http_status == 409 and caught.value.code == "CONFLICT"
    assert existing_id(caught.value) == first


def test_207_partial_batch_is_returned_with_its_errors(client: HubSpotClient) -> None:
    body = {"inputs": [{"properties": {"email": "a@x.example"}},
                       {"properties": {"email": "b@x.example", "hs_analytics_source": "X"}}]}
    reply = client.call("contacts.batch_create", client.batch.create, "contacts", body)
    assert reply.status == 207
    assert len(reply.json()["results"]) == 1 and reply.json()["numErrors"] == 1
    assert "read only" in reply.json()["errors"][0]["message"]


def test_batch_upsert_by_unique_property(client: HubSpotClient, double: HubSpotDouble) -> None:
    body = {"inputs": [{"id": "Hana@Kelp.example", "idProperty": "email",
                        "properties": {"firstname": "Hana"}}]}
    first = client.call("contacts.batch_upsert", client.batch.upsert, "contacts", body)
    again = client.call("contacts.batch_upsert", client.batch.upsert, "contacts", body)
    assert [r["new"] for r in first.json()["results"] + again.json()["results"]] == [True, False]
    assert first.json()["results"][0]["id"] == again.json()["results"][0]["id"]
    assert len(double.portal.records["contacts"]) == 1


def test_locally_rejected_calls_become_permanent_errors(client: HubSpotClient) -> None:
    with pytest.raises(CrmPermanentError) as caught:
        client.call("contacts.get_by_id", client.objects.get_by_id, "contacts", "1",
                    no_such_argument=True)
    assert caught.value.code == "CLIENT"


# -- 429 by policy -----------------------------------------------------------------------------
def test_ten_secondly_limit_waits_and_retries(client: HubSpotClient, double: HubSpotDouble,
                                              fake_time: FakeTime) -> None:
    double.inject(429, rate_limit_body("TEN_SECONDLY_ROLLING"), times=2)
    reply = client.call("contacts.search", client.search_api.do_search, "contacts", SEARCH)
    assert reply.status == 200
    assert fake_time.sleeps == [1.0, 2.0]
    assert client.api_calls() == double.count() == 3


def test_retry_after_header_is_honoured(client: HubSpotClient, double: HubSpotDouble,
                                        fake_time: FakeTime) -> None:
    double.inject(429, rate_limit_body("TEN_SECONDLY_ROLLING"), headers={"Retry-After": "3"})
    client.call("owners.get_page", client.owners.get_page)
    assert fake_time.sleeps == [3.0]


def test_persistent_short_limit_gives_up_retryable(client: HubSpotClient,
                                                   double: HubSpotDouble,
                                                   fake_time: FakeTime) -> None:
    double.inject(429, rate_limit_body("SECONDLY"), times=20)
    with pytest.raises(CrmRetryableError) as caught:
        client.call("contacts.search", client.search_api.do_search, "contacts", SEARCH)
    assert (caught.value.http_status, caught.value.code) == (429, "SECONDLY")
    assert fake_time.sleeps == [1.0, 2.0, 4.0, 8.0]
    assert double.count() == 5


def test_daily_limit_stops_alerts_and_pauses_until_the_portals_midnight(
        double: HubSpotDouble, clock: FakeClock, fake_time: FakeTime) -> None:
    from zoneinfo import ZoneInfo

    alerts: list[str] = []
    client = make_client(double, clock, fake_time, on_alert=alerts.append,
                         portal_tz=ZoneInfo("Asia/Kuala_Lumpur"))
    double.inject(429, rate_limit_body("DAILY"), times=1)
    with pytest.raises(CrmRetryableError) as caught:
        create_contact(client, "a@x.example")
    # 09:00 UTC is 17:00 in Kuala Lumpur: seven hours to its midnight, plus a minute.
    assert caught.value.code == "DAILY" and caught.value.retry_after == 7 * 3600 + 60
    assert fake_time.sleeps == [] and len(alerts) == 1 and "daily" in alerts[0]
    with pytest.raises(CrmRetryableError, match="not calling"):
        create_contact(client, "b@x.example")
    assert double.count() == 1
    clock.advance(hours=7, minutes=2)
    assert create_contact(client, "b@x.example")
    assert double.count() == 2


# -- transport retries, timeouts, connection failures ----------------------------------------
def test_post_is_retried_on_5xx(client: HubSpotClient, double: HubSpotDouble) -> None:
    double.inject(503, {"status": "error", "message": "unavailable", "category": "X"},
                  method="POST", times=2)
    reply = client.call("contacts.search", client.search_api.do_search, "contacts", SEARCH)
    assert reply.status == 200
    assert double.count("POST") == 3
    assert client.api_calls() == 3


def test_persistent_5xx_is_retryable_after_the_transport_retries(client: HubSpotClient,
                                                                 double: HubSpotDouble) -> None:
    double.inject(502, None, times=10)
    with pytest.raises(CrmRetryableError) as caught:
        client.call("deals.update", client.objects.update, "deals", "1",
                    {"properties": {"dealname": "x"}})
    assert caught.value.http_status == 502
    assert double.count() == 4 == client.api_calls()


def test_plain_creates_that_could_duplicate_are_not_replayed(client: HubSpotClient,
                                                            double: HubSpotDouble) -> None:
    double.inject(500, {"status": "error", "message": "boom", "category": "INTERNAL"})
    with pytest.raises(CrmRetryableError):
        client.call("tasks.create", client.create_once.create, "tasks",
                    {"properties": {"hs_timestamp": "1795427230000"}})
    assert double.count() == 1


def test_every_call_has_a_timeout_and_reads_are_retried(double: HubSpotDouble, clock: FakeClock,
                                                        fake_time: FakeTime) -> None:
    client = make_client(double, clock, fake_time, timeout=0.3)
    double.inject(200, {"results": []}, path="/crm/v3/owners", delay=0.8)
    reply = client.call("owners.get_page", client.owners.get_page)
    assert reply.json()["results"] == []
    assert double.count(path="/crm/v3/owners") == 2
    double.inject(200, {}, path="/crm/v3/owners", delay=0.8, times=3)
    with pytest.raises(CrmRetryableError) as caught:
        client.call("owners.get_page", client.owners.get_page)
    assert caught.value.code == "TIMEOUT"


def test_connection_refused_is_retryable(clock: FakeClock, fake_time: FakeTime) -> None:
    client = HubSpotClient(access_token=TOKEN, base_url="http://127.0.0.1:9", timeout=1.0,
                           clock=clock, sleep=fake_time.sleep, transport_backoff=0.0)
    with pytest.raises(CrmRetryableError) as caught:
        client.call("owners.get_page", client.owners.get_page)
    assert caught.value.code in ("CONNECTION", "TIMEOUT")
    assert client.api_calls() == 4


def test_clock_defaults_to_utc_now(double: HubSpotDouble) -> None:
    client = HubSpotClient(access_token=TOKEN, base_url=double.url)
    assert abs((client.now() - datetime.now(UTC)).total_seconds()) < 5
