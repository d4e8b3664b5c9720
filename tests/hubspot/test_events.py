"""Parsing HubSpot webhook bodies into ChangeEvents: app batches (shuffled, repeated, mixed),
echoes of our own writes, other portals, unknown types, workflow bodies, malformed input."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from referral_sync.hubspot.events import MalformedEvents, parse_events
from referral_sync.models import CrmObject, ReferralStatus

NOW = datetime(2026, 11, 23, 9, 47, tzinfo=UTC)
APP_ID = "1160452"


def event(n: int, kind: str, object_id: int, **extra: Any) -> dict[str, Any]:
    return {"eventId": 1000 + n, "subscriptionId": 2468000 + n % 7, "portalId": 62515,
            "appId": int(APP_ID), "occurredAt": 1795426800000 + n * 1000,
            "subscriptionType": kind, "attemptNumber": 0, "objectId": object_id, **extra}


def parse(items: object, **kwargs: Any) -> list[Any]:
    return parse_events(json.dumps(items).encode(), received_at=NOW, app_id=APP_ID,
                        portal_id="62515", **kwargs)


def mixed_batch() -> list[dict[str, Any]]:
    """100 events of every kind we meet, 20 of them redeliveries of others."""
    rng = random.Random(7)
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("contact.creation", {"changeFlag": "CREATED", "changeSource": "CRM_UI"}),
        ("contact.propertyChange", {"propertyName": "referral_status",
                                    "propertyValue": "qualified", "changeSource": "CRM_UI",
                                    "sourceId": "userId:52530071"}),
        ("contact.propertyChange", {"propertyName": "hubspot_owner_id",
                                    "propertyValue": "101", "changeSource": "INTEGRATION",
                                    "sourceId": APP_ID}),
        ("deal.propertyChange", {"propertyName": "dealstage", "propertyValue": "closedwon",
                                 "changeSource": "CRM_UI"}),
        ("deal.propertyChange", {"propertyName": "amount", "propertyValue": "12000.50"}),
        ("deal.creation", {"changeFlag": "NEW"}),
        ("object.propertyChange", {"objectTypeId": "0-3", "propertyName": "dealstage",
                                   "propertyValue": "88888801", "isSensitive": False}),
        ("contact.associationChange", {"associationType": "CONTACT_TO_DEAL",
                                       "fromObjectId": 5001, "toObjectId": 7001,
                                       "associationRemoved": False}),
        ("conversation.creation", {}),
        ("ticket.propertyChange", {"propertyName": "subject", "propertyValue": "x"}),
    ]
    originals = [event(n, *kinds[n % len(kinds)][:1], 5000 + n % 13,
                       **kinds[n % len(kinds)][1]) for n in range(80)]
    repeats = [dict(rng.choice(originals), attemptNumber=1) for _ in range(20)]
    batch = originals + repeats
    rng.shuffle(batch)
    return batch


def test_a_shuffled_batch_of_100_with_repeats_parses_to_80_distinct_events() -> None:
    batch = mixed_batch()
    assert len(batch) == 100
    events = parse(batch)
    assert len(events) == 100
    assert len({e.event_id for e in events}) == 80
    again = parse(list(reversed(batch)))
    assert {e.event_id for e in again} == {e.event_id for e in events}
    assert {(e.event_id, e.status, e.noop_reason) for e in again} == \
        {(e.event_id, e.status, e.noop_reason) for e in events}


def test_batch_events_carry_what_processing_needs() -> None:
    events = {e.fields["subscription_type"] + ":" + str(e.fields.get("property_name")): e
              for e in parse(mixed_batch())}
    qualified = events["contact.propertyChange:referral_status"]
    assert qualified.object_type is CrmObject.CONTACT
    assert qualified.status is ReferralStatus.QUALIFIED
    assert qualified.noop_reason is None
    assert qualified.occurred_at.tzinfo is not None
    stage = events["deal.propertyChange:dealstage"]
    # What "closedwon" means is decided from pipeline metadata when the deal is re-read.
    assert stage.object_type is CrmObject.DEAL and stage.status is None
    assert stage.fields["property_value"] == "closedwon"
    assert events["object.propertyChange:dealstage"].object_type is CrmObject.DEAL
    assert events["deal.propertyChange:amount"].amount == Decimal("12000.50")
    association = events["contact.associationChange:None"]
    assert (association.object_type, association.record_id) == (CrmObject.CONTACT, "5001")


def test_unknown_types_and_echoes_are_kept_but_marked_as_no_ops() -> None:
    events = parse(mixed_batch())
    by_type = {e.fields["subscription_type"]: e for e in events}
    assert "unsupported" in (by_type["conversation.creation"].noop_reason or "")
    assert by_type["conversation.creation"].object_type is CrmObject.OTHER
    assert "unsupported" in (by_type["ticket.propertyChange"].noop_reason or "")
    owner_changes = [e for e in events if e.fields.get("property_name") == "hubspot_owner_id"]
    assert owner_changes and all(e.noop_reason == "echo of our own write" for e in owner_changes)
    user_changes = [e for e in events if e.fields.get("source_id") == "userId:52530071"]
    assert user_changes and all(e.noop_reason is None for e in user_changes)


def test_echo_detection_needs_our_app_id() -> None:
    item = event(1, "contact.propertyChange", 5, propertyName="referral_status",
                 propertyValue="qualified", changeSource="INTEGRATION", sourceId=APP_ID)
    assert parse([item])[0].noop_reason == "echo of our own write"
    other_app = dict(item, sourceId="9999")
    assert parse([other_app])[0].noop_reason is None
    unconfigured = parse_events(json.dumps([item]).encode(), received_at=NOW)
    assert unconfigured[0].noop_reason is None


def test_a_recycled_event_id_with_different_content_is_a_different_event() -> None:
    first = event(1, "contact.propertyChange", 5, propertyName="referral_status",
                  propertyValue="qualified")
    recycled = dict(first, objectId=6)
    redelivered = dict(first, attemptNumber=3)
    ids = [e.event_id for e in parse([first, recycled, redelivered])]
    assert ids[0] != ids[1]
    assert ids[0] == ids[2]
    assert ids[0].startswith("1001-")


def test_other_portals_events_are_ignored() -> None:
    item = dict(event(1, "deal.propertyChange", 7, propertyName="dealstage",
                      propertyValue="closedwon"), portalId=999)
    assert "portal 999" in (parse([item])[0].noop_reason or "")


def test_old_docs_event_type_field_is_understood() -> None:
    item = event(1, "", 5)
    del item["subscriptionType"]
    item["eventType"] = "contact.creation"
    parsed = parse([item])[0]
    assert parsed.object_type is CrmObject.CONTACT and parsed.noop_reason is None


def test_unknown_status_values_and_junk_items_do_not_break_the_batch() -> None:
    items: list[Any] = [
        event(1, "contact.propertyChange", 5, propertyName="referral_status",
              propertyValue="WON!!"),
        42, "text", None, {"unexpected": True},
        event(2, "deal.propertyChange", 7, propertyName="amount", propertyValue="lots"),
    ]
    events = parse(items)
    assert len(events) == 6
    assert events[0].status is None and events[0].noop_reason is None
    assert [e.noop_reason for e in events[1:4]] == ["not an event object"] * 3
    assert events[4].noop_reason is not None and events[4].object_type is CrmObject.OTHER
    assert events[5].amount is None


def test_workflow_customised_body() -> None:
    body = {"hs_object_id": "9001", "referral_id": "ref_7", "dealstage": "closedwon",
            "pipeline": "default", "amount": "5000", "hs_lastmodifieddate": "1795427230000"}
    raw = json.dumps(body).encode()
    [parsed] = parse_events(raw, received_at=NOW, query={"object": "deal"})
    assert parsed.object_type is CrmObject.DEAL
    assert (parsed.record_id, parsed.referral_id, parsed.amount) == ("9001", "ref_7",
                                                                      Decimal("5000"))
    assert parsed.occurred_at == datetime.fromtimestamp(1795427230, tz=UTC)
    assert parsed.event_id.startswith("wf-")
    assert parse_events(raw, received_at=NOW)[0].event_id == parsed.event_id


def test_workflow_all_properties_body_for_a_contact() -> None:
    body = {"objectId": 5005, "properties": {
        "referral_status": {"value": "disqualified", "timestamp": 1795427230000},
        "referral_disqualified_reason": {"value": "no budget this year"},
        "email": {"value": "hana@kelp.example"}}}
    [parsed] = parse_events(json.dumps(body).encode(), received_at=NOW)
    assert parsed.object_type is CrmObject.CONTACT
    assert parsed.status is ReferralStatus.DISQUALIFIED
    assert parsed.reason == "no budget this year"
    assert parsed.record_id == "5005"


def test_workflow_body_without_a_record_id_is_kept_as_a_no_op() -> None:
    [parsed] = parse_events(b'{"note": "hello"}', received_at=NOW)
    assert parsed.noop_reason == "workflow webhook without a record id"


@pytest.mark.parametrize("raw", [b"", b"not json", b"\xff\xfe", b"42", b'"text"', b"null",
                                 b"[1, 2", b"true"])
def test_malformed_bodies_raise_malformed_events(raw: bytes) -> None:
    with pytest.raises(MalformedEvents):
        parse_events(raw, received_at=NOW)
