"""Referrer portal and personal landing page."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from flask.testing import FlaskClient

from referral_sync.app import Components
from referral_sync.local.actions import CrmUser
from referral_sync.models import Referee
from referral_sync.service import Submission
from tests.conftest import SeededPeople
from webhooks import create_app


@pytest.fixture
def client(components: Components) -> FlaskClient:
    return create_app(components=components).test_client()


def portal_path(components: Components, referral_id: str) -> str:
    [notice] = components.store.outbox.messages(referral_id=referral_id)
    match = re.search(r"https?://[^/]+(/portal/\S+)", notice.body)
    assert match, notice.body
    return match.group(1)


def test_notice_links_to_a_portal_showing_referrals_and_rewards(
        client: FlaskClient, components: Components, people: SeededPeople) -> None:
    result = components.service.submit(Submission(
        referrer_email=people.good_referrer, referee=Referee(
            first_name="Hana", last_name="Yusof", email="hana@kelp-robotics.com",
            company="Kelp Robotics")))
    path = portal_path(components, result.referral.id)
    ae = CrmUser(components.crm)  # type: ignore[arg-type]
    assert result.record is not None
    ae.qualify(result.record.record_id)
    opp = ae.convert(result.record.record_id, Decimal(20000))
    ae.set_stage(opp, "Closed Won")
    components.service.reconcile()
    components.worker.drain()
    page = client.get(path).get_data(as_text=True)
    assert "Kelp Robotics" in page and "closed won" in page
    assert "USD 1200" in page  # 200 at qualification + 1,000 at close
    assert "USD 20000" in page  # revenue influenced
    assert "#1" in page


def test_forged_portal_token_is_404(client: FlaskClient) -> None:
    assert client.get("/portal/not-a-token").status_code == 404


def test_landing_page_submits_a_referral_for_its_owner(
        client: FlaskClient, components: Components, people: SeededPeople) -> None:
    url = components.service.ctx.links.landing_url(people.good_referrer)
    path = url.removeprefix(components.settings.public_base_url)
    page = client.get(path).get_data(as_text=True)
    assert "Recommended by" in page
    assert str(people.good_referrer_account["name"]) in page
    assert "20% off your first year" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post(path, data={
        "csrf_token": token.group(1), "first_name": "Ivy", "last_name": "Tan",
        "email": "ivy@lotus-analytics.com", "company": "Lotus Analytics"})
    assert response.status_code == 201
    [referral] = components.store.referrals.list()
    assert str(referral.referrer.email) == people.good_referrer
    assert referral.intro_strength.value == "strong"


def test_landing_form_requires_csrf(client: FlaskClient, components: Components,
                                    people: SeededPeople) -> None:
    url = components.service.ctx.links.landing_url(people.good_referrer)
    path = url.removeprefix(components.settings.public_base_url)
    client.get(path)
    response = client.post(path, data={"first_name": "Ivy", "last_name": "Tan",
                                       "email": "ivy@lotus-analytics.com", "company": "Lotus"})
    assert response.status_code == 403
    assert components.store.referrals.list() == []


def test_unknown_landing_code_is_404(client: FlaskClient) -> None:
    assert client.get("/r/whatever").status_code == 404


def test_access_log_lines_never_show_portal_or_landing_tokens(
        components: Components, people: SeededPeople) -> None:
    import logging

    from referral_sync.logs import JsonFormatter

    portal = components.service.ctx.links.portal_url(people.good_referrer)
    token = portal.rsplit("/", 1)[1]
    record = logging.getLogger("werkzeug").makeRecord("werkzeug", 20, __file__, 1,
                               '127.0.0.1 - - "GET /portal/%s HTTP/1.1" 200 -', (token,), None)
    line = JsonFormatter().format(record)
    assert token not in line and "/portal/<redacted>" in line
