"""The /refer form: CSRF, field errors, confirmation, and the referral in the CRM."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from referral_sync.app import Components
from referral_sync.local import tables as t
from referral_sync.local.crm import LocalCrm
from tests.conftest import SeededPeople
from webhooks import create_app


@pytest.fixture
def client(components: Components) -> FlaskClient:
    return create_app(components=components).test_client()


def csrf_token(client: FlaskClient) -> str:
    page = client.get("/refer").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def form(referrer: str, token: str, **overrides: str) -> dict[str, str]:
    data = {"csrf_token": token, "referrer_email": referrer, "name": "Hana Yusof",
            "email": "hana@kelp-robotics.com", "company": "Kelp Robotics", "phone": "",
            "note": "Met at a conference", "intro_strength": "strong"}
    data.update(overrides)
    return data


def leads(components: Components) -> list[sa.Row[tuple[object, ...]]]:
    assert isinstance(components.crm, LocalCrm)
    with components.crm.engine.connect() as conn:
        return list(conn.execute(sa.select(t.leads)))


def test_form_page_has_the_four_fields_and_the_offer(client: FlaskClient) -> None:
    page = client.get("/refer").get_data(as_text=True)
    for name in ("name", "email", "company", "note", "phone", "csrf_token"):
        assert f'name="{name}"' in page
    assert "20% off your first year" in page


def test_submitted_form_creates_a_routed_lead(client: FlaskClient, components: Components,
                                              people: SeededPeople) -> None:
    response = client.post("/refer", data=form(people.good_referrer, csrf_token(client)))
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    assert "Thank you" in page and "Hana Yusof" in page
    [lead] = leads(components)
    assert lead.email == "hana@kelp-robotics.com"
    assert lead.owner_id == people.good_referrer_account["owner_id"]  # strong intro: the AE
    assert lead.first_action == "call"


def test_form_without_csrf_token_is_refused(client: FlaskClient, components: Components,
                                            people: SeededPeople) -> None:
    client.get("/refer")
    response = client.post("/refer", data=form(people.good_referrer, "forged"))
    assert response.status_code == 403
    assert "expired" in response.get_data(as_text=True)
    assert leads(components) == []


def test_form_token_from_another_browser_is_refused(components: Components,
                                                   people: SeededPeople) -> None:
    app = create_app(components=components)
    token = csrf_token(app.test_client())
    other_browser = app.test_client()
    other_browser.get("/refer")
    response = other_browser.post("/refer", data=form(people.good_referrer, token))
    assert response.status_code == 403


def test_field_errors_are_shown_next_to_fields(client: FlaskClient, components: Components,
                                               people: SeededPeople) -> None:
    response = client.post("/refer", data=form(people.good_referrer, csrf_token(client),
                                               email="not-an-email", company=""))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert page.count('class="error"') == 2
    assert 'value="Hana Yusof"' in page  # what the user typed is kept
    assert leads(components) == []


def test_policy_refusal_is_explained(client: FlaskClient, people: SeededPeople) -> None:
    response = client.post("/refer", data=form(people.at_risk, csrf_token(client)))
    assert response.status_code == 403
    assert "take part in the referral program" in response.get_data(as_text=True)
