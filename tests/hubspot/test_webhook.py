"""``POST /webhooks/hubspot`` through Flask: signed batches are stored and answered 204 only
after ``receive_events`` returns; forged, stale and future-dated requests get 401."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr

from referral_sync.errors import RetryableError
from referral_sync.hubspot.signatures import sign_v1, sign_v2, sign_v3
from referral_sync.models import ChangeEvent
from referral_sync.settings import HubSpotSettings, Settings
from webhooks.hubspot import make_blueprint, signed_url

NOW = datetime(2026, 11, 23, 9, 47, 14, tzinfo=UTC)
SECRET = "5f2d3b1e-6c7a-4e8f-9b0a-1c2d3e4f5a6b"
BASE = "https://hooks.example.com"


@dataclass
class FakeComponents:
    """What the blueprint needs from ``referral_sync.app.Components``."""

    settings: Settings
    clock: Callable[[], datetime] = lambda: NOW
    received: list[tuple[str, list[ChangeEvent], bytes]] = field(default_factory=list)
    fail: Exception | None = None

    def now(self) -> datetime:
        return self.clock()

    def receive_events(self, provider: str, events: list[ChangeEvent], raw: bytes) -> object:
        if self.fail is not None:
            raise self.fail
        self.received.append((provider, events, raw))
        return object()


def make_settings(**hubspot: Any) -> Settings:
    values: dict[str, Any] = {"client_secret": SecretStr(SECRET), "app_id": "1160452",
                              **hubspot}
    return Settings(_env_file=None, public_base_url=BASE,
                    hubspot=HubSpotSettings(**values))


@pytest.fixture
def components() -> FakeComponents:
    return FakeComponents(settings=make_settings())


@pytest.fixture
def client(components: FakeComponents) -> FlaskClient:
    app = Flask(__name__)
    app.extensions["referral_sync"] = components
    app.register_blueprint(make_blueprint())
    return app.test_client()


def body(n: int = 3) -> bytes:
    return json.dumps([
        {"eventId": 100 + i, "subscriptionId": 1, "portalId": 62515, "appId": 1160452,
         "occurredAt": 1795427230000 + i, "subscriptionType": "contact.propertyChange",
         "attemptNumber": 0, "objectId": 900 + i, "propertyName": "referral_status",
         "propertyValue": "qualified", "changeSource": "CRM_UI"} for i in range(n)
    ], separators=(",", ":")).encode()


def signed(raw: bytes, *, path: str = "/webhooks/hubspot", at: datetime = NOW,
           secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(at.timestamp() * 1000))
    return {"X-HubSpot-Signature-v3": sign_v3(secret, "POST", BASE + path, raw, stamp),
            "X-HubSpot-Request-Timestamp": stamp, "Content-Type": "application/json"}


def test_a_signed_batch_is_stored_then_answered_204(client: FlaskClient,
                                                    components: FakeComponents) -> None:
    raw = body(3)
    answer = client.post("/webhooks/hubspot", data=raw, headers=signed(raw))
    assert answer.status_code == 204 and answer.data == b""
    [(provider, events, stored_raw)] = components.received
    assert provider == "hubspot" and stored_raw == raw
    assert [e.record_id for e in events] == ["900", "901", "902"]


def test_the_query_string_is_part_of_the_signed_url(client: FlaskClient,
                                                    components: FakeComponents) -> None:
    raw = body(1)
    path = "/webhooks/hubspot?tenant=acme%3Aprod&x=a%20b"
    assert client.post(path, data=raw, headers=signed(raw, path=path)).status_code == 204
    wrong = signed(raw, path="/webhooks/hubspot?tenant=acme%3Aprod")
    assert client.post(path, data=raw, headers=wrong).status_code == 401
    assert len(components.received) == 1


@pytest.mark.parametrize("case", ["forged", "stale", "future", "unsigned", "wrong_secret",
                                  "body_changed"])
def test_bad_signatures_get_401_and_nothing_is_stored(client: FlaskClient,
                                                      components: FakeComponents,
                                                      case: str) -> None:
    raw = body(2)
    headers = {
        "forged": {**signed(raw), "X-HubSpot-Signature-v3": "Zm9yZ2VkIHNpZ25hdHVyZQ=="},
        "stale": signed(raw, at=NOW - timedelta(minutes=5, seconds=1)),
        "future": signed(raw, at=NOW + timedelta(minutes=5, seconds=1)),
        "unsigned": {"Content-Type": "application/json"},
        "wrong_secret": signed(raw, secret="someone-elses-secret"),
        "body_changed": signed(body(3)),
    }[case]
    answer = client.post("/webhooks/hubspot", data=raw, headers=headers)
    assert answer.status_code == 401
    assert answer.json == {"error": "invalid_signature",
                           "message": "signature missing, wrong or out of date"}
    assert components.received == []


def test_previous_secret_still_works_during_rotation() -> None:
    components = FakeComponents(settings=make_settings(
        client_secret=SecretStr("brand-new"), previous_client_secrets=[SecretStr(SECRET)]))
    app = Flask(__name__)
    app.extensions["referral_sync"] = components
    app.register_blueprint(make_blueprint())
    raw = body(1)
    assert app.test_client().post("/webhooks/hubspot", data=raw,
                                  headers=signed(raw)).status_code == 204


def test_workflow_webhooks_signed_v2_are_accepted(client: FlaskClient,
                                                  components: FakeComponents) -> None:
    raw = b'{"hs_object_id": "77", "dealstage": "closedwon", "referral_id": "ref_1"}'
    path = "/webhooks/hubspot?object=deal"
    headers = {"X-HubSpot-Signature": sign_v2(SECRET, "POST", BASE + path, raw),
               "X-HubSpot-Signature-Version": "v2", "Content-Type": "application/json"}
    assert client.post(path, data=raw, headers=headers).status_code == 204
    [(_, [event], _)] = components.received
    assert (event.record_id, event.referral_id, event.object_type.value) == ("77", "ref_1",
                                                                             "deal")


def test_v1_app_signature_without_v3_is_accepted(client: FlaskClient) -> None:
    raw = body(1)
    headers = {"X-HubSpot-Signature": sign_v1(SECRET, raw), "X-HubSpot-Signature-Version": "v1"}
    assert client.post("/webhooks/hubspot", data=raw, headers=headers).status_code == 204


@pytest.mark.parametrize("raw", [b"not json", b"\xff\xfe\x00", b"42"])
def test_malformed_signed_bodies_get_400(client: FlaskClient, components: FakeComponents,
                                         raw: bytes) -> None:
    answer = client.post("/webhooks/hubspot", data=raw, headers=signed(raw))
    assert answer.status_code == 400
    assert answer.json is not None and answer.json["error"] == "malformed_body"
    assert components.received == []


def test_unknown_event_types_are_stored_and_answered_204(client: FlaskClient,
                                                         components: FakeComponents) -> None:
    raw = json.dumps([{"eventId": 1, "subscriptionType": "conversation.newMessage",
                       "objectId": 3, "occurredAt": 1795427230000, "portalId": 62515}]).encode()
    assert client.post("/webhooks/hubspot", data=raw, headers=signed(raw)).status_code == 204
    [(_, [event], _)] = components.received
    assert event.noop_reason is not None


def test_empty_batch_is_acknowledged(client: FlaskClient, components: FakeComponents) -> None:
    assert client.post("/webhooks/hubspot", data=b"[]", headers=signed(b"[]")).status_code == 204
    assert components.received == []


def test_oversized_bodies_get_413_before_verification(client: FlaskClient,
                                                      components: FakeComponents) -> None:
    raw = b"[" + b" " * components.settings.max_body_bytes + b"]"
    assert client.post("/webhooks/hubspot", data=raw, headers=signed(raw)).status_code == 413


def test_store_outage_answers_503_so_hubspot_redelivers(client: FlaskClient,
                                                        components: FakeComponents) -> None:
    components.fail = RetryableError("database is locked")
    raw = body(1)
    assert client.post("/webhooks/hubspot", data=raw, headers=signed(raw)).status_code == 503


def test_signed_url_without_a_raw_uri_quotes_the_path() -> None:
    environ = {"SCRIPT_NAME": "/app", "PATH_INFO": "/webhooks/hubspot", "QUERY_STRING": ""}
    assert signed_url("https://h.example/", environ) == "https://h.example/app/webhooks/hubspot"
    environ["QUERY_STRING"] = "a=%3A"
    assert signed_url("https://h.example", environ).endswith("/webhooks/hubspot?a=%3A")
