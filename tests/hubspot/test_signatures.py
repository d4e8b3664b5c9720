"""HubSpot signature verification: published test vectors, the freshness window in both
directions, secret rotation, v1/v2 fallback, and a differential check against the SDK's own
``hubspot.utils.signature.Signature`` on generated inputs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hubspot.exceptions import InvalidSignatureTimestampError
from hubspot.utils.signature import Signature
from hypothesis import given, settings
from hypothesis import strategies as st

from referral_sync.errors import SignatureError
from referral_sync.hubspot.signatures import (
    canonical_uri,
    sign_v1,
    sign_v2,
    sign_v3,
    verify_signature,
)

SDK_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
SDK_BODY = b"{'example_field':'example_value'}"
SDK_URI = "https://www.example.com/webhook_uri"

WORKED_SECRET = "5f2d3b1e-6c7a-4e8f-9b0a-1c2d3e4f5a6b"
WORKED_URL = "https://hooks.example.com/hubspot/webhook?tenant=acme%3Aprod"
WORKED_TS = "1795427234567"
WORKED_BODY = (
    b'[{"eventId":3816279340,"subscriptionId":2468013,"portalId":62515,"appId":1160452,'
    b'"occurredAt":1795427230000,"subscriptionType":"deal.propertyChange","attemptNumber":0,'
    b'"objectId":18450722113,"propertyName":"dealstage","propertyValue":"closedwon",'
    b'"changeSource":"CRM_UI","sourceId":"userId:52530071"}]'
)
WORKED_NOW = datetime.fromtimestamp(int(WORKED_TS) / 1000, tz=UTC)
DOCS_V1_BODY = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,'
    b'"changeSource":"CRM","changeFlag":"NEW","appId":54321}]'
)


def v3_headers(signature: str, timestamp: str = WORKED_TS) -> dict[str, str]:
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp,
            "X-HubSpot-Signature": "ignored-when-v3-is-present",
            "X-HubSpot-Signature-Version": "v1"}


# -- published vectors -------------------------------------------------------------------------
def test_sdk_vectors_for_every_version() -> None:
    assert sign_v1(SDK_SECRET, SDK_BODY) == \
        "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"
    assert sign_v2(SDK_SECRET, "POST", SDK_URI, SDK_BODY) == \
        "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"
    assert sign_v2(SDK_SECRET, "GET", SDK_URI, b"") == \
        "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    assert sign_v3(SDK_SECRET, "POST", SDK_URI, SDK_BODY, "1693657560000") == \
        "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="


def test_docs_v1_vector() -> None:
    assert sign_v1(SDK_SECRET, DOCS_V1_BODY) == \
        "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"


def test_worked_v3_example_decodes_the_uri_before_hashing() -> None:
    assert len(WORKED_BODY) == 299
    assert canonical_uri(WORKED_URL) == "https://hooks.example.com/hubspot/webhook?tenant=acme:prod"
    assert sign_v3(WORKED_SECRET, "POST", WORKED_URL, WORKED_BODY, WORKED_TS) == \
        "5EEAPdY7MMZKLIWE/qicFXZrDGf+BhVzeJgTKa4bBnM="
    assert sign_v1(WORKED_SECRET, WORKED_BODY) == \
        "de5b51a2898eae358e43154bfa50a875f2ea925764d5b5b05c771c6f846a7620"


def test_worked_example_verifies_and_the_undecoded_signature_does_not() -> None:
    version = verify_signature(method="POST", url=WORKED_URL, body=WORKED_BODY,
                               headers=v3_headers("5EEAPdY7MMZKLIWE/qicFXZrDGf+BhVzeJgTKa4bBnM="),
                               secrets=[WORKED_SECRET], now=WORKED_NOW)
    assert version == "v3"
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(method="POST", url=WORKED_URL, body=WORKED_BODY,
                         headers=v3_headers("2u/5brZHaFRhgXT3ybVIKan6cjrT9Z9LZN9kE61sSLo="),
                         secrets=[WORKED_SECRET], now=WORKED_NOW)


def test_only_the_twelve_escapes_are_decoded_in_either_case() -> None:
    url = "https://h.example/p%2fq?a=%3a%3A&b=%20%2B%7E&c=%40%21%24%27%28%29%2a%2C%3b%3F"
    assert canonical_uri(url) == "https://h.example/p/q?a=::&b=%20%2B%7E&c=@!$'()*,;?"


# -- freshness, both directions --------------------------------------------------------------
@pytest.mark.parametrize("skew", [timedelta(minutes=-5), timedelta(0), timedelta(minutes=5)])
def test_timestamps_within_five_minutes_either_way_pass(skew: timedelta) -> None:
    now = WORKED_NOW + skew
    signature = sign_v3(WORKED_SECRET, "POST", WORKED_URL, WORKED_BODY, WORKED_TS)
    assert verify_signature(method="POST", url=WORKED_URL, body=WORKED_BODY,
                            headers=v3_headers(signature), secrets=[WORKED_SECRET], now=now) == "v3"


@pytest.mark.parametrize("skew", [timedelta(minutes=5, milliseconds=1),
                                  timedelta(minutes=-5, milliseconds=-1), timedelta(days=1),
                                  timedelta(days=-30)])
def test_stale_and_future_dated_requests_are_refused(skew: timedelta) -> None:
    signature = sign_v3(WORKED_SECRET, "POST", WORKED_URL, WORKED_BODY, WORKED_TS)
    with pytest.raises(SignatureError, match="5 minutes"):
        verify_signature(method="POST", url=WORKED_URL, body=WORKED_BODY,
                         headers=v3_headers(signature), secrets=[WORKED_SECRET],
                         now=WORKED_NOW + skew)


@pytest.mark.parametrize("stamp", ["", "abc", "1795427234.567", "-5", None])
def test_malformed_or_missing_timestamp_is_refused_not_crashed(stamp: str | None) -> None:
    headers = {"X-HubSpot-Signature-v3": "x"}
    if stamp is not None:
        headers["X-HubSpot-Request-Timestamp"] = stamp
    with pytest.raises(SignatureError, match="(?i)timestamp"):
        verify_signature(method="POST", url=WORKED_URL, body=WORKED_BODY, headers=headers,
                         secrets=[WORKED_SECRET], now=WORKED_NOW)


# -- tampering, secrets, versions -------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    secret: str = WORKED_SECRET
    method: str = "POST"
    url: str = WORKED_URL
    body: bytes = WORKED_BODY
    ts: str = WORKED_TS


@pytest.mark.parametrize("tampered", [
    Delivery(body=WORKED_BODY.replace(b"closedwon", b"closedlost")),
    Delivery(url=WORKED_URL.replace("acme", "evil")), Delivery(method="PUT"),
    Delivery(ts=str(int(WORKED_TS) + 1)), Delivery(secret="not-the-secret")])
def test_any_tampering_breaks_v3(tampered: Delivery) -> None:
    signature = sign_v3(WORKED_SECRET, "POST", WORKED_URL, WORKED_BODY, WORKED_TS)
    with pytest.raises(SignatureError):
        verify_signature(method=tampered.method, url=tampered.url, body=tampered.body,
                         headers=v3_headers(signature, tampered.ts), secrets=[tampered.secret],
                         now=WORKED_NOW)


def test_previous_secrets_are_accepted_during_rotation() -> None:
    signature = sign_v3("old-secret", "POST", WORKED_URL, WORKED_BODY, WORKED_TS)
    assert verify_signature(method="POST", url=WORKED_URL, body=WORKED_BODY,
                            headers=v3_headers(signature), secrets=["new-secret", "old-secret"],
                            now=WORKED_NOW) == "v3"


def test_no_configured_secret_refuses_everything() -> None:
    with pytest.raises(SignatureError, match="no HubSpot client secret"):
        verify_signature(method="POST", url=WORKED_URL, body=WORKED_BODY,
                         headers=v3_headers("x"), secrets=["", ""], now=WORKED_NOW)


def test_v1_and_v2_are_used_only_without_v3_headers() -> None:
    v1 = {"x-hubspot-signature": sign_v1(WORKED_SECRET, WORKED_BODY),
          "x-hubspot-signature-version": "v1"}
    assert verify_signature(method="POST", url=WORKED_URL, body=WORKED_BODY, headers=v1,
                            secrets=[WORKED_SECRET], now=WORKED_NOW) == "v1"
    v2 = {"X-HubSpot-Signature": sign_v2(WORKED_SECRET, "POST", WORKED_URL, WORKED_BODY).upper(),
          "X-HubSpot-Signature-Version": "v2"}
    assert verify_signature(method="POST", url=WORKED_URL, body=WORKED_BODY, headers=v2,
                            secrets=[WORKED_SECRET], now=WORKED_NOW) == "v2"
    # A valid v1 signature does not rescue a failing v3 one.
    with pytest.raises(SignatureError, match="v3"):
        verify_signature(method="POST", url=WORKED_URL, body=WORKED_BODY,
                         headers={**v1, **v3_headers("forged")}, secrets=[WORKED_SECRET],
                         now=WORKED_NOW)


@pytest.mark.parametrize("headers", [{}, {"X-HubSpot-Signature": "abc"},
                                     {"X-HubSpot-Signature": "abc",
                                      "X-HubSpot-Signature-Version": "v9"}])
def test_missing_wrong_or_unknown_legacy_signatures_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        verify_signature(method="POST", url=WORKED_URL, body=WORKED_BODY, headers=headers,
                         secrets=[WORKED_SECRET], now=WORKED_NOW)


# -- differential against the SDK ------------------------------------------------------------
_ESCAPES = ["%3A", "%2F", "%3F", "%40", "%21", "%24", "%27", "%28", "%29", "%2A", "%2C", "%3B",
            "%3a", "%2f", "%20", "%7E", "%2B"]
_segment = st.lists(st.one_of(st.sampled_from(_ESCAPES),
                              st.text("abcxyz019-_.~", min_size=1, max_size=6)),
                    max_size=5).map("".join)
_urls = st.builds(lambda host, path, query: f"https://{host}.example/{path}" +
                  (f"?q={query}" if query else ""),
                  st.text("abcdefgh", min_size=1, max_size=8), _segment, _segment)
_secrets = st.text(min_size=1, max_size=40)
_bodies = st.text(max_size=300)
_methods = st.sampled_from(["POST", "GET", "PUT", "PATCH"])


@settings(max_examples=300, deadline=None)
@given(secret=_secrets, body=_bodies, url=_urls, method=_methods,
       timestamp=st.integers(min_value=0, max_value=10**14))
def test_signing_agrees_with_the_sdk(secret: str, body: str, url: str, method: str,
                                     timestamp: int) -> None:
    raw = body.encode("utf-8")
    assert sign_v1(secret, raw) == Signature.get_signature(secret, body, "v1")
    assert sign_v2(secret, method, url, raw) == \
        Signature.get_signature(secret, body, "v2", url, method)
    # The SDK does not decode the URI itself: it expects the canonical form.
    assert sign_v3(secret, method, url, raw, str(timestamp)) == \
        Signature.get_signature(secret, body, "v3", canonical_uri(url), method, str(timestamp))


@settings(max_examples=150, deadline=None)
@given(secret=_secrets, body=_bodies, url=_urls, age_s=st.integers(min_value=-900,
                                                                     max_value=900))
def test_acceptance_agrees_with_the_sdk_except_for_future_timestamps(
        secret: str, body: str, url: str, age_s: int) -> None:
    now = datetime.now(UTC)
    stamp = str(int((now - timedelta(seconds=age_s)).timestamp() * 1000))
    signature = sign_v3(secret, "POST", url, body.encode(), stamp)
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}
    try:
        ours = verify_signature(method="POST", url=url, body=body.encode(), headers=headers,
                                secrets=[secret], now=now) == "v3"
    except SignatureError:
        ours = False
    try:
        sdk = Signature.is_valid(signature, secret, body, canonical_uri(url), "POST", "v3",
                                 stamp)
    except InvalidSignatureTimestampError:
        sdk = False
    if abs(age_s) < 295 or age_s > 305:
        # The SDK accepts any future timestamp; we refuse those beyond five minutes.
        expected = sdk and age_s >= -300
        assert ours == expected
