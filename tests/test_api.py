"""POST /api/v1/referrals: the status codes of DESIGN.md §4, and nothing written on refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from referral_sync.app import Components
from referral_sync.local import tables as t
from referral_sync.local.crm import LocalCrm
from tests.conftest import SeededPeople, referral_payload
from webhooks import create_app


@pytest.fixture
def client(components: Components) -> FlaskClient:
    return create_app(components=components).test_client()


def crm_rows(components: Components, table: sa.Table) -> list[Any]:
    assert isinstance(components.crm, LocalCrm)
    with components.crm.engine.connect() as conn:
        return list(conn.execute(sa.select(table)))


def assert_nothing_written(components: Components) -> None:
    assert crm_rows(components, t.leads) == []
    assert crm_rows(components, t.tasks) == []
    assert components.store.referrals.list() == []
    assert components.store.outbox.messages() == []


def test_accepted_referral_is_routed_and_in_the_crm(
        client: FlaskClient, components: Components, people: SeededPeople) -> None:
    response = client.post("/api/v1/referrals",
                           json=referral_payload(people.good_referrer, employees=2000))
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "submitted"
    assert body["crm_write"] == "done"
    # Strategic (>= 1000 employees): the default hybrid policy sends it to the referrer's AE.
    assert body["owner"]["id"] == people.good_referrer_account["owner_id"]
    assert "account executive" in body["routing_reason"]
    [lead] = crm_rows(components, t.leads)
    assert lead.id == body["crm_record"]["id"]
    assert lead.lead_source == "Referral"
    assert lead.owner_id == body["owner"]["id"]
    assert lead.referral_id == body["id"]
    assert lead.referrer_account_id == people.good_referrer_account["id"]
    [task] = crm_rows(components, t.tasks)[:1]
    assert task.owner_id == lead.owner_id and task.what_id == lead.id
    [notice] = components.store.outbox.messages(referral_id=body["id"])
    assert notice.template == "submitted" and notice.recipient == people.good_referrer


def test_weak_intro_at_small_company_goes_to_the_fallback_queue(
        client: FlaskClient, people: SeededPeople) -> None:
    response = client.post("/api/v1/referrals",
                           json=referral_payload(people.good_referrer, employees=50))
    assert response.status_code == 201
    body = response.get_json()
    assert body["owner"] == {"id": body["owner"]["id"], "name": "Referral Queue",
                             "kind": "queue"}
    assert body["first_action"] == "email"


def test_malformed_json_is_400(client: FlaskClient, components: Components) -> None:
    response = client.post("/api/v1/referrals", data=b'{"referrer_email": ',
                           content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "malformed_json"
    assert_nothing_written(components)


def test_non_json_body_is_415(client: FlaskClient) -> None:
    response = client.post("/api/v1/referrals", data="a=b",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


@pytest.mark.parametrize("body", [[], "text", 42, None])
def test_json_that_is_not_an_object_is_422(client: FlaskClient, body: object) -> None:
    response = client.post("/api/v1/referrals", data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 422


def test_missing_fields_are_named(client: FlaskClient, components: Components,
                                  people: SeededPeople) -> None:
    payload = referral_payload(people.good_referrer)
    del payload["referee"]["company"]  # type: ignore[attr-defined]
    del payload["referee"]["last_name"]  # type: ignore[attr-defined]
    response = client.post("/api/v1/referrals", json=payload)
    assert response.status_code == 422
    fields = {p["field"] for p in response.get_json()["problems"]}
    assert fields == {"referee.company", "referee.last_name"}
    assert_nothing_written(components)


@pytest.mark.parametrize("field,value", [
    ("email", "not-an-email"), ("email", "a@b"), ("first_name", ""), ("employees", -3),
    ("company", "x" * 300), ("unexpected", "field"),
])
def test_invalid_referee_fields_are_422(client: FlaskClient, components: Components,
                                        people: SeededPeople, field: str, value: object) -> None:
    response = client.post("/api/v1/referrals",
                           json=referral_payload(people.good_referrer, **{field: value}))
    assert response.status_code == 422
    assert response.get_json()["problems"][0]["field"] == f"referee.{field}"
    assert_nothing_written(components)


def test_invalid_referrer_email_is_422(client: FlaskClient, components: Components) -> None:
    response = client.post("/api/v1/referrals", json=referral_payload("nobody"))
    assert response.status_code == 422
    assert response.get_json()["problems"][0]["field"] == "referrer_email"
    assert_nothing_written(components)


def test_unknown_referrer_is_403(client: FlaskClient, components: Components) -> None:
    response = client.post("/api/v1/referrals", json=referral_payload("who@unknown-co.com"))
    assert response.status_code == 403
    assert response.get_json()["code"] == "referrer_unknown"
    assert_nothing_written(components)


@pytest.mark.parametrize("who,code", [
    ("at_risk", "account_status"), ("collections", "account_status"),
    ("dispute", "account_status"), ("trial", "account_status"),
    ("new_customer", "account_too_new"), ("prospect_contact", "not_paying_customer"),
])
def test_ineligible_referrer_is_403_with_reason(client: FlaskClient, components: Components,
                                                people: SeededPeople, who: str,
                                                code: str) -> None:
    response = client.post("/api/v1/referrals", json=referral_payload(getattr(people, who)))
    assert response.status_code == 403
    body = response.get_json()
    assert body["error"] == "ineligible"
    assert body["code"] == code
    assert body["message"]
    assert_nothing_written(components)


def test_referee_at_an_existing_customer_is_409(client: FlaskClient, components: Components,
                                                people: SeededPeople) -> None:
    domain = people.other_customer["domain"]
    response = client.post("/api/v1/referrals", json=referral_payload(
        people.good_referrer, email=f"someone@{domain}", company="Anything"))
    assert response.status_code == 409
    body = response.get_json()
    assert body["duplicate_kind"] == "customer"
    # No other customer's data (name, owner, record id) leaks into the answer.
    text = json.dumps(body)
    assert str(people.other_customer["name"]) not in text
    assert str(people.other_customer["id"]) not in text
    assert_nothing_written(components)


def test_customer_matched_by_company_name_is_409(client: FlaskClient,
                                                 people: SeededPeople) -> None:
    name = str(people.other_customer["name"]).upper().replace(" ", "  ")
    response = client.post("/api/v1/referrals", json=referral_payload(
        people.good_referrer, email="buyer@fresh-domain.com", company=name))
    assert response.status_code == 409
    assert response.get_json()["duplicate_kind"] == "customer"


def test_second_referral_of_the_same_person_is_409(client: FlaskClient,
                                                   people: SeededPeople) -> None:
    first = client.post("/api/v1/referrals", json=referral_payload(people.good_referrer))
    assert first.status_code == 201
    again = client.post("/api/v1/referrals", json=referral_payload(people.good_referrer))
    assert again.status_code == 409
    assert again.get_json()["duplicate_kind"] in {"earlier_referral", "open_pipeline"}


def test_same_domain_colleague_is_a_duplicate_of_open_pipeline(
        client: FlaskClient, people: SeededPeople) -> None:
    assert client.post("/api/v1/referrals",
                       json=referral_payload(people.good_referrer)).status_code == 201
    colleague = client.post("/api/v1/referrals", json=referral_payload(
        people.good_referrer, first_name="Ali", email="ali@kelp-robotics.com"))
    assert colleague.status_code == 409


def test_velocity_limit_is_429(client: FlaskClient, people: SeededPeople) -> None:
    codes = []
    for n in range(11):
        response = client.post("/api/v1/referrals", json=referral_payload(
            people.good_referrer, email=f"p{n}@company{n}.com", company=f"Company {n} Group"))
        codes.append(response.status_code)
    assert codes[:10] == [201] * 10
    assert codes[10] == 429
    assert response.headers["Retry-After"]
    assert response.get_json()["error"] == "velocity"


def test_oversized_body_is_413(client: FlaskClient, components: Components,
                               people: SeededPeople) -> None:
    payload = referral_payload(people.good_referrer, note="x" * (1024 * 1024 + 10))
    response = client.post("/api/v1/referrals", json=payload)
    assert response.status_code == 413
    assert_nothing_written(components)


def test_openapi_document_describes_the_intake(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    operation = doc["paths"]["/api/v1/referrals"]["post"]
    assert {"201", "403", "409", "422", "429"} <= set(operation["responses"])
    assert "Submission" in doc["components"]["schemas"]


def test_health(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert b"referral_sync_jobs" in client.get("/metrics").data
