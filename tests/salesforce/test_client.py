"""Errors, retries, timeouts, call counting and the three auth modes, at the HTTP layer."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from referral_sync.errors import ConfigurationError, CrmPermanentError, CrmRetryableError
from referral_sync.salesforce import SalesforceCrm
from tests.salesforce.conftest import make_crm, make_decision, make_referral
from tests.salesforce.fake_org import INSTANCE, FakeOrg, error

LOCK = error("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
LIMIT = error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
LOGIN_OK = (
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.'
    'xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com"><soapenv:Body>'
    "<loginResponse><result><metadataServerUrl>https://acme.my.salesforce.com/services/Soap/m/"
    "62.0/00D5g00000AbCdE</metadataServerUrl><passwordExpired>false</passwordExpired>"
    "<serverUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D5g00000AbCdE</serverUrl>"
    "<sessionId>{session}</sessionId></result></loginResponse></soapenv:Body>"
    "</soapenv:Envelope>"
)
LOGIN_REFUSED = (
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.'
    'xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body>'
    "<soapenv:Fault><faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid "
    "username, password, security token; or user locked out.</faultstring><detail>"
    "<sf:LoginFault><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>"
    "Invalid username, password, security token; or user locked out.</sf:exceptionMessage>"
    "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
)
SOAP_LOGIN = "https://login.salesforce.com/services/Soap/u/62.0"
TOKEN_URL = "https://login.salesforce.com/services/oauth2/token"


def test_malformed_query_is_permanent_and_not_retried(
        org: FakeOrg, installed: SalesforceCrm, sleeps: list[float]) -> None:
    org.fail("GET", r"/query/", 400, error("MALFORMED_QUERY", "unexpected token: 'FORM'"))
    before = installed.api_calls()

    with pytest.raises(CrmPermanentError) as caught:
        installed.get_owner("email:ada@vendor.example")

    assert (caught.value.code, caught.value.http_status) == ("MALFORMED_QUERY", 400)
    assert installed.api_calls() - before == 1 and sleeps == []


def test_expired_access_token_is_permanent(org: FakeOrg, installed: SalesforceCrm) -> None:
    org.fail("GET", r"/query/", 401, error("INVALID_SESSION_ID", "Session expired or invalid"))

    with pytest.raises(CrmPermanentError) as caught:
        installed.get_owner("email:ada@vendor.example")

    assert (caught.value.code, caught.value.http_status) == ("INVALID_SESSION_ID", 401)


def test_request_limit_backs_off_for_minutes_and_alerts(
        org: FakeOrg, installed: SalesforceCrm, sleeps: list[float],
        caplog: pytest.LogCaptureFixture) -> None:
    org.fail("POST", r"/composite$", 403, LIMIT, times=5)
    before = installed.api_calls()

    with caplog.at_level(logging.WARNING), pytest.raises(CrmRetryableError) as caught:
        installed.load_referrer("hank@globex.example")

    assert (caught.value.code, caught.value.retry_after) == ("REQUEST_LIMIT_EXCEEDED", 300.0)
    assert installed.api_calls() - before == 1 and sleeps == []
    assert "API request limit exceeded" in caplog.text
    assert "hank@" not in caplog.text


def test_missing_resource_is_permanent(org: FakeOrg, installed: SalesforceCrm) -> None:
    org.fail("GET", r"/query/", 404, error("NOT_FOUND", "The requested resource does not exist"))

    with pytest.raises(CrmPermanentError) as caught:
        installed.get_owner("email:ada@vendor.example")

    assert caught.value.http_status == 404


def test_server_errors_are_retried_with_backoff(
        org: FakeOrg, installed: SalesforceCrm, sleeps: list[float],
        people: dict[str, str]) -> None:
    org.fail("GET", r"/query/", 503, error("SERVER_UNAVAILABLE", "try again"), times=2)
    before = installed.api_calls()

    owner = installed.get_owner("email:ada@vendor.example")

    assert owner is not None and owner.id == people["ae"]
    assert installed.api_calls() - before == 3
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and sleeps[1] > sleeps[0] - 0.5


def test_persistent_outage_gives_up_as_retryable(
        org: FakeOrg, installed: SalesforceCrm, sleeps: list[float]) -> None:
    org.fail("GET", r"/query/", 500, "<html><body>Bad gateway</body></html>", times=10)

    with pytest.raises(CrmRetryableError) as caught:
        installed.get_owner("email:ada@vendor.example")

    assert caught.value.http_status == 500
    assert len(sleeps) == 3  # four attempts


def test_timeouts_are_retried_and_every_call_carries_a_timeout(
        org: FakeOrg, installed: SalesforceCrm, sleeps: list[float],
        rsps: responses.RequestsMock) -> None:
    org.fail("GET", r"/query/", 0, requests.exceptions.ReadTimeout("read timed out"), times=4)

    with pytest.raises(CrmRetryableError) as caught:
        installed.get_owner("email:ada@vendor.example")

    assert caught.value.code == "TIMEOUT" and len(sleeps) == 3
    assert installed.get_owner("email:nobody@vendor.example") is None
    assert rsps.calls and all(call.request.req_kwargs["timeout"] == 30.0 for call in rsps.calls)
    assert all(call.request.headers["Sforce-Call-Options"] == "client=referral-sync"
               for call in rsps.calls)


def test_lock_error_in_a_composite_write_retries_without_duplicating(
        org: FakeOrg, installed: SalesforceCrm, sleeps: list[float],
        people: dict[str, str]) -> None:
    org.fail("POST", r"/composite$", 200, {"compositeResponse": [
        {"body": LOCK, "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "lead"},
        {"body": error("PROCESSING_HALTED", "halted"), "httpHeaders": {},
         "httpStatusCode": 400, "referenceId": "lead_read"}]})

    ref = installed.create_referral(make_referral(people), make_decision(people["ae"]))

    assert len(sleeps) == 1
    assert list(org.db["Lead"]) == [ref.record_id]


def test_partial_collection_failures_are_reported_per_record(
        org: FakeOrg, installed: SalesforceCrm, sleeps: list[float],
        people: dict[str, str]) -> None:
    referral = make_referral(people)
    referral.crm_record_id = installed.create_referral(
        referral, make_decision(people["ae"])).record_id
    locked = [{"id": referral.crm_record_id, "success": False,
               "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked",
                           "fields": []}]}]
    org.fail("PATCH", r"/composite/sobjects$", 200, locked)

    installed.update_referral(referral, fields={"reward_status": "qualified: approved"})

    assert len(sleeps) == 1
    assert org.db["Lead"][referral.crm_record_id]["Referral_Reward_Status__c"] == \
        "qualified: approved"
    with pytest.raises(CrmPermanentError) as caught:
        installed.update_referral(referral, fields={"Referral_Status__c": "Paid"})
    assert caught.value.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_unexpected_body_is_treated_as_transient(
        org: FakeOrg, installed: SalesforceCrm, sleeps: list[float]) -> None:
    org.fail("GET", r"/query/", 200, "<html>maintenance</html>", times=4)

    with pytest.raises(CrmRetryableError) as caught:
        installed.get_owner("email:ada@vendor.example")

    assert caught.value.code == "BAD_RESPONSE"


def test_error_text_never_carries_email_addresses(org: FakeOrg, installed: SalesforceCrm,
                                                  people: dict[str, str]) -> None:
    org.fail("POST", r"/composite$", 400, error(
        "DUPLICATES_DETECTED", "Use one of these records? peter@initech.example"))

    with pytest.raises(CrmPermanentError) as caught:
        installed.create_referral(make_referral(people), make_decision(people["ae"]))

    assert "peter@initech.example" not in str(caught.value) + caught.value.body
    assert "<email>" in str(caught.value)


def test_password_login_refreshes_an_expired_session(
        org: FakeOrg, rsps: responses.RequestsMock, sleeps: list[float],
        people: dict[str, str]) -> None:
    sessions = iter(["00D!first", "00D!second"])
    rsps.add_callback("POST", SOAP_LOGIN, callback=lambda req: (
        200, {}, LOGIN_OK.format(session=next(sessions))))
    org.fail("GET", r"/query/", 401, error("INVALID_SESSION_ID", "Session expired or invalid"))
    crm = make_crm(sleeps, access_token=None, instance_url=None, username="sync@acme.example",
                   password="pw", security_token="tok")

    owner = crm.get_owner("email:ada@vendor.example")

    assert owner is not None and owner.id == people["ae"]
    logins = [c for c in rsps.calls if c.request.url == SOAP_LOGIN]
    assert len(logins) == 2
    assert "<n1:password>pwtok</n1:password>" in logins[0].request.body
    assert rsps.calls[-1].request.headers["Authorization"] == "Bearer 00D!second"


def test_refused_login_is_permanent(rsps: responses.RequestsMock, sleeps: list[float]) -> None:
    rsps.add("POST", SOAP_LOGIN, body=LOGIN_REFUSED, status=500)
    crm = make_crm(sleeps, access_token=None, instance_url=None, username="sync@acme.example",
                   password="wrong")

    with pytest.raises(CrmPermanentError) as caught:
        crm.get_owner("email:ada@vendor.example")

    assert caught.value.code == "INVALID_LOGIN"


def test_jwt_bearer_login(org: FakeOrg, rsps: responses.RequestsMock, sleeps: list[float],
                          tmp_path: Path, people: dict[str, str]) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "server.key"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    rsps.add("POST", TOKEN_URL, json={"access_token": "00D!jwt",
                                      "instance_url": f"https://{INSTANCE}"})
    crm = make_crm(sleeps, access_token=None, instance_url=None, username="sync@acme.example",
                   consumer_key="3MVG9-key", private_key_file=str(key_file))

    assert crm.get_owner("email:ada@vendor.example") is not None

    token_request = next(c.request for c in rsps.calls if c.request.url == TOKEN_URL)
    form = parse_qs(token_request.body)
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert rsps.calls[-1].request.headers["Authorization"] == "Bearer 00D!jwt"


def test_no_credentials_is_a_configuration_error(sleeps: list[float]) -> None:
    crm = make_crm(sleeps, access_token=None)

    with pytest.raises(ConfigurationError) as caught:
        crm.get_owner("email:ada@vendor.example")

    assert "INSTANCE_URL + ACCESS_TOKEN" in caught.value.problems[0]


def test_composite_subrequests_set_auto_assign_explicitly(
        installed: SalesforceCrm, rsps: responses.RequestsMock, people: dict[str, str]) -> None:
    installed.create_referral(make_referral(people), make_decision(people["ae"]))

    composite = json.loads(next(c.request.body for c in rsps.calls
                                if (c.request.url or "").endswith("/composite")))
    lead_write = next(sub for sub in composite["compositeRequest"] if sub["method"] == "PATCH")
    assert lead_write["httpHeaders"] == {"Sforce-Auto-Assign": "FALSE"}
    assert lead_write["url"] == "/services/data/v62.0/sobjects/Lead/Referral_Id__c/ref-0001"


def test_an_injected_salesforce_instance_gets_timeouts_and_counting(
        org: FakeOrg, rsps: responses.RequestsMock, people: dict[str, str]) -> None:
    from simple_salesforce.api import Salesforce

    sf = Salesforce(session_id="00D!tok", instance_url=f"https://{INSTANCE}", version="62.0",
                    session=requests.Session())
    crm = SalesforceCrm(sf)

    owner = crm.get_owner("email:ada@vendor.example")

    assert owner is not None and owner.id == people["ae"]
    assert crm.api_calls() == 1
    assert rsps.calls[-1].request.req_kwargs["timeout"] == 30.0
    assert rsps.calls[-1].request.headers["Sforce-Auto-Assign"] == "FALSE"
