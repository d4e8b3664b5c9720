"""Fuzzing the HTTP surface (DESIGN.md §4, "Bad input never produces a 500"): Schemathesis
generates requests from our OpenAPI document and calls the app in-process; hand-made and
generated malformed JSON, oversized bodies and XML entity attacks hit the intake API and the
CRM webhook endpoints. No response may be a 5xx."""

from __future__ import annotations

import json

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import SF_ORG, SF_TOKEN

SF_PATH = f"/webhooks/salesforce/{SF_TOKEN}"
FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def test_generated_requests_never_get_a_server_error(app: Flask) -> None:
    """Every operation of /openapi.json, with Schemathesis-generated requests.

    (Schemathesis' own pytest fixture loader does not run under pytest 9 yet, so the
    operations' Hypothesis strategies are driven directly.)"""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the OpenAPI document describes no operation"
    for operation in operations:

        @given(case=operation.as_strategy())
        @FUZZ
        def call(case: schemathesis.Case) -> None:
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, response.status_code,
                                                response.text[:300])

        call()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)
REFERRAL_SHAPED = st.fixed_dictionaries({
    "referrer_email": st.text() | st.emails(),
    "referee": st.dictionaries(st.sampled_from(
        ["first_name", "last_name", "email", "company", "employees", "phone", "note"]),
        JSON_VALUES, max_size=7),
}, optional={"intro_strength": JSON_VALUES, "program": JSON_VALUES})


@given(body=JSON_VALUES | REFERRAL_SHAPED)
@FUZZ
def test_any_json_value_is_answered_without_a_server_error(app: Flask, body: object) -> None:
    response = app.test_client().post("/api/v1/referrals", data=json.dumps(body),
                                      content_type="application/json")
    assert response.status_code < 500


@given(body=st.binary(max_size=2048))
@FUZZ
def test_any_bytes_are_answered_without_a_server_error(app: Flask, body: bytes) -> None:
    client = app.test_client()
    for path, kind in (("/api/v1/referrals", "application/json"), (SF_PATH, "text/xml"),
                       ("/webhooks/hubspot", "application/json")):
        assert client.post(path, data=body, content_type=kind).status_code < 500


MALFORMED_JSON = [
    pytest.param(b"{", id="truncated"),
    pytest.param(b'{"referrer_email": "a@b.com",}', id="trailing-comma"),
    pytest.param(b"\xff\xfe{}", id="not-utf8"),
    pytest.param(b'{"referee": {"employees": 1e400}}', id="huge-number"),
    pytest.param(b'{"a": "\\ud800"}', id="lone-surrogate"),
    pytest.param(b"[" * 50_000 + b"]" * 50_000, id="deeply-nested"),
    pytest.param(b'{"x": "' + b"y" * (2 * 1024 * 1024) + b'"}', id="oversized"),
]


@pytest.mark.parametrize("path", ["/api/v1/referrals", "/webhooks/hubspot"])
@pytest.mark.parametrize("body", MALFORMED_JSON)
def test_malformed_json_is_a_client_error(app: Flask, path: str, body: bytes) -> None:
    response = app.test_client().post(path, data=body, content_type="application/json")
    assert 400 <= response.status_code < 500


def _envelope(inner: str, org: str = SF_ORG) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>04k000000000001AAA</ActionId>
   {inner}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>""".encode()


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
<soapenv:Body>&lol4;</soapenv:Body></soapenv:Envelope>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
<soapenv:Body><OrganizationId>&xxe;</OrganizationId></soapenv:Body></soapenv:Envelope>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<x/>"""

HOSTILE_XML = [
    pytest.param(BILLION_LAUGHS, id="billion-laughs"),
    pytest.param(EXTERNAL_ENTITY, id="external-entity"),
    pytest.param(PARAMETER_ENTITY, id="parameter-entity"),
    pytest.param(b"<a>" * 20_000 + b"</a>" * 20_000, id="deeply-nested"),
    pytest.param(_envelope("<Notification><Id>04l1</Id>")[:300], id="truncated"),
    pytest.param(_envelope("<Notification><Id>1</Id><sObject>"
                           "<bad xmlns='urn:x'/></sObject></Notification>"), id="odd-sobject"),
    pytest.param(_envelope("", org="00D999999999999AAA"), id="other-org"),
    pytest.param(b"<x>" + b"a" * (2 * 1024 * 1024) + b"</x>", id="oversized"),
    pytest.param(b"not xml at all", id="not-xml"),
]


@pytest.mark.parametrize("body", HOSTILE_XML)
def test_hostile_outbound_messages_are_refused_without_a_server_error(
        app: Flask, body: bytes) -> None:
    response = app.test_client().post(SF_PATH, data=body, content_type="text/xml")
    assert 400 <= response.status_code < 500, response.data[:300]
    assert b"root:" not in response.data  # nothing of /etc/passwd leaks back
