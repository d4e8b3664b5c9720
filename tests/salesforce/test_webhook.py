"""``POST /webhooks/salesforce/<token>`` on a small Flask app with a recording inbox."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from referral_sync.errors import RetryableError
from referral_sync.models import ChangeEvent, ReferralStatus
from referral_sync.program.loader import LoadedProgram, default_program_text, parse_program
from referral_sync.salesforce.outbound import ACK
from referral_sync.settings import Settings
from tests.salesforce.conftest import WEBHOOK_TOKEN, make_settings
from tests.salesforce.fake_org import ORG_ID, FakeOrg
from tests.salesforce.test_outbound import BILLION_LAUGHS, EXTERNAL_ENTITY, WON, message
from webhooks.salesforce import make_blueprint

URL = f"/webhooks/salesforce/{WEBHOOK_TOKEN}"


@dataclass
class Result:
    stored: int
    duplicates: int


@dataclass
class Inbox:
    """Stands in for ``Components``: an inbox unique per (provider, event id)."""

    settings: Settings
    program: LoadedProgram
    events: dict[tuple[str, str], ChangeEvent] = field(default_factory=dict)
    raw: list[bytes] = field(default_factory=list)
    fail: bool = False

    def receive_events(self, provider: str, events: list[ChangeEvent], raw: bytes) -> Result:
        if self.fail:
            raise RetryableError("database is locked")
        self.raw.append(raw)
        new = [e for e in events if (provider, e.event_id) not in self.events]
        for event in new:
            self.events[(provider, event.event_id)] = event
        return Result(len(new), len(events) - len(new))

    def now(self) -> datetime:
        return datetime(2026, 6, 30, 15, 0, tzinfo=UTC)


def make_app(**salesforce: Any) -> tuple[FlaskClient, Inbox]:
    inbox = Inbox(make_settings(**salesforce), parse_program(default_program_text()))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = inbox.settings.max_body_bytes
    app.extensions["referral_sync"] = inbox
    app.register_blueprint(make_blueprint())
    return app.test_client(), inbox


@pytest.fixture
def app() -> tuple[FlaskClient, Inbox]:
    return make_app()


def post(client: FlaskClient, body: bytes, url: str = URL) -> Any:
    return client.post(url, data=body, content_type="text/xml; charset=utf-8",
                       headers={"SOAPAction": '""'})


def test_a_message_is_stored_then_acknowledged_exactly(app: tuple[FlaskClient, Inbox]) -> None:
    client, inbox = app

    response = post(client, message(WON))

    assert response.status_code == 200
    assert response.data == ACK
    assert response.content_type == "text/xml; charset=utf-8"
    (event,) = inbox.events.values()
    assert (event.provider, event.event_id, event.status) == (
        "salesforce", "04l5g00000QrStUAAV", ReferralStatus.CLOSED_WON)


def test_redelivery_is_acknowledged_and_stored_once(app: tuple[FlaskClient, Inbox],
                                                    org: FakeOrg) -> None:
    client, inbox = app
    ids = [org.add("Lead", LastName=f"L{n}", Company="C", Referral_Id__c=f"r{n}")
           for n in range(100)]
    raw = org.outbound_message("Lead", ids)

    answers = [post(client, raw) for _ in range(3)]

    assert [a.data for a in answers] == [ACK] * 3
    assert len(inbox.events) == 100


def test_wrong_or_unconfigured_token_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    client, inbox = make_app()
    with caplog.at_level(logging.INFO):
        wrong = post(client, message(WON), "/webhooks/salesforce/guess")
    off_client, _ = make_app(webhook_token=None)

    assert wrong.status_code == 401 and b"Fault" in wrong.data
    assert post(off_client, message(WON)).status_code == 401
    assert inbox.events == {}
    assert "guess" not in caplog.text


def test_message_from_another_org_is_refused() -> None:
    client, inbox = make_app()
    other = message(WON).replace(b"00D5g00000AbCdEEAV", b"00D5g00000ZzZzZEAV")
    unset_client, _ = make_app(org_id=None)

    assert post(client, other).status_code == 403
    assert post(unset_client, message(WON)).status_code == 403
    assert inbox.events == {}


def test_the_15_character_org_id_is_accepted() -> None:
    client, inbox = make_app(org_id=ORG_ID[:15])

    assert post(client, message(WON)).data == ACK


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, b"<not-xml",
                                  b"{\"json\": true}", b""])
def test_bad_bodies_get_400_never_500(app: tuple[FlaskClient, Inbox], body: bytes) -> None:
    client, inbox = app

    response = post(client, body)

    assert response.status_code == 400
    assert inbox.events == {}


def test_oversized_body_is_refused(app: tuple[FlaskClient, Inbox]) -> None:
    client, inbox = app

    response = post(client, message(WON) + b" " * (1024 * 1024))

    assert response.status_code == 413
    assert inbox.events == {}


def test_storage_trouble_gives_no_ack_so_salesforce_redelivers(
        app: tuple[FlaskClient, Inbox]) -> None:
    client, inbox = app
    inbox.fail = True

    response = post(client, message(WON))

    assert response.status_code == 503 and ACK not in response.data
    inbox.fail = False
    assert post(client, message(WON)).data == ACK
    assert len(inbox.events) == 1


def test_stored_raw_body_has_no_session_id(app: tuple[FlaskClient, Inbox]) -> None:
    client, inbox = app

    post(client, message(WON, session="<SessionId>00D!LiveSession</SessionId>"))

    assert b"LiveSession" not in inbox.raw[0]


def test_through_the_real_app_the_inbox_turns_redeliveries_into_no_ops(
        components: Any) -> None:
    from pydantic import SecretStr

    from webhooks import create_app

    components.settings.salesforce.webhook_token = SecretStr(WEBHOOK_TOKEN)
    components.settings.salesforce.org_id = ORG_ID
    client = create_app(components=components).test_client()
    before = components.store.inbox.counts()

    answers = [post(client, message(WON)).data for _ in range(3)]

    after = components.store.inbox.counts()
    assert answers == [ACK] * 3
    assert after["events"] == before["events"] + 1
    assert sum(after[s] for s in after if s != "events") == sum(
        before[s] for s in before if s != "events") + 1
