"""Search: 200 per page, pacing under the 5 requests/s limit, streaming past the 10,000-result
cap by re-anchoring (also when 10,000 records share one timestamp), and the reconcile feed
built on it (``list_changes``)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from referral_sync.hubspot.adapter import HubSpotCrm
from referral_sync.hubspot.client import HubSpotClient
from referral_sync.hubspot.records import to_millis
from referral_sync.hubspot.search import RateLimiter, Searcher, op
from referral_sync.models import CrmObject, ReferralStatus
from tests.conftest import FakeClock
from tests.hubspot.conftest import FakeTime
from tests.hubspot.double import TOKEN, HubSpotDouble, Portal


def seed_referral_contacts(portal: Portal, start: datetime, count: int, *,
                           step: timedelta = timedelta(seconds=1),
                           same_from: int | None = None, same_to: int = 0) -> None:
    for n in range(count):
        at = start + step * (same_from if same_from is not None and
                             same_from <= n < same_to else n)
        portal.seed("contacts", created=at, email=f"c{n}@bulk.example",
                    referral_id=f"ref_{n}", referral_status="submitted")


def stream(double: HubSpotDouble, clock: FakeClock, fake_time: FakeTime,
           since: datetime) -> tuple[list[str], int]:
    client = HubSpotClient(access_token=TOKEN, base_url=double.url, clock=clock,
                           sleep=fake_time.sleep)
    searcher = Searcher(client, RateLimiter(4.0, clock=fake_time.monotonic,
                                            sleep=fake_time.sleep))
    ids = [r["id"] for r in searcher.stream(
        "contacts", "lastmodifieddate", [op("referral_id", "HAS_PROPERTY")], ["email"],
        to_millis(since) or 0, to_millis(clock()) or 0)]
    return ids, client.api_calls()


def test_pages_of_200_oldest_first(double: HubSpotDouble, clock: FakeClock,
                                   fake_time: FakeTime) -> None:
    start = clock() - timedelta(days=1)
    seed_referral_contacts(double.portal, start, 450)
    ids, calls = stream(double, clock, fake_time, start)
    assert len(ids) == 450 == len(set(ids))
    assert calls == 3
    assert all(r.body["limit"] == 200 for r in double.requests)
    assert double.requests[0].body["sorts"] == [{"propertyName": "lastmodifieddate",
                                                 "direction": "ASCENDING"}]


def test_streams_past_the_10000_cap_by_re_anchoring(double: HubSpotDouble, clock: FakeClock,
                                                    fake_time: FakeTime) -> None:
    start = clock() - timedelta(days=1)
    # Records 9,990-10,009 share one timestamp: the re-anchored query must skip those
    # already yielded and still yield the rest.
    seed_referral_contacts(double.portal, start, 10_450, step=timedelta(milliseconds=5),
                           same_from=9_990, same_to=10_010)
    ids, calls = stream(double, clock, fake_time, start)
    assert len(ids) == 10_450 == len(set(ids))
    assert all(int(r.body.get("after") or 0) < 10_000 for r in double.requests)
    anchored = [r for r in double.requests if "after" not in r.body]
    assert len(anchored) == 2
    assert calls <= 0.02 * 10_450


def test_ten_thousand_records_at_one_timestamp_are_walked_by_id(double: HubSpotDouble,
                                                                clock: FakeClock,
                                                                fake_time: FakeTime) -> None:
    start = clock() - timedelta(days=1)
    seed_referral_contacts(double.portal, start, 10_060, step=timedelta(milliseconds=1),
                           same_from=0, same_to=10_050)
    ids, _ = stream(double, clock, fake_time, start)
    assert len(ids) == 10_060 == len(set(ids))
    walked = [r for r in double.requests if any(
        f["propertyName"] == "hs_object_id" for g in r.body["filterGroups"]
        for f in g["filters"])]
    assert walked and walked[0].body["sorts"][0]["propertyName"] == "hs_object_id"


def test_searches_are_paced_below_five_per_second(fake_time: FakeTime) -> None:
    limiter = RateLimiter(4.0, clock=fake_time.monotonic, sleep=fake_time.sleep)
    starts = []
    for _ in range(9):
        limiter.acquire()
        starts.append(fake_time.now)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(abs(g - 0.25) < 1e-9 for g in gaps)
    assert len(fake_time.sleeps) == 8


def test_real_time_pacing_never_trips_the_search_limit(double: HubSpotDouble,
                                                       clock: FakeClock) -> None:
    double.search_window = (5, 1.0)
    client = HubSpotClient(access_token=TOKEN, base_url=double.url, clock=clock)
    searcher = Searcher(client, RateLimiter(4.0))
    began = time.monotonic()
    for _ in range(7):
        searcher.first("contacts", [], ["email"])
    assert time.monotonic() - began >= 1.4
    assert client.api_calls() == 7 == double.count("POST")


def test_list_changes_merges_contacts_and_deals_by_time(crm: HubSpotCrm, double: HubSpotDouble,
                                                        clock: FakeClock) -> None:
    crm.ensure_schema(dry_run=False)
    portal, t0 = double.portal, clock() - timedelta(hours=2)
    portal.seed("contacts", created=t0, email="a@x.example", referral_id="r1",
                referral_status="qualified")
    portal.seed("contacts", created=t0 + timedelta(minutes=2), email="plain@x.example")
    portal.seed("deals", created=t0 + timedelta(minutes=1), dealname="d", pipeline="7654321",
                dealstage="88888801", referral_id="r2", amount="900")
    portal.seed("deals", created=t0 + timedelta(minutes=3), dealname="d2", pipeline="default",
                dealstage="88888803", referral_id="r3")
    portal.seed("contacts", created=clock() - timedelta(seconds=10), email="fresh@x.example",
                referral_id="r4")
    events = list(crm.list_changes(t0 - timedelta(minutes=1)))
    assert [(e.object_type, e.referral_id) for e in events] == [
        (CrmObject.CONTACT, "r1"), (CrmObject.DEAL, "r2"), (CrmObject.DEAL, "r3")]
    assert [e.status for e in events] == [ReferralStatus.QUALIFIED, ReferralStatus.CLOSED_WON,
                                          ReferralStatus.OPPORTUNITY]
    assert events[1].amount is not None and int(events[1].amount) == 900
    again = list(crm.list_changes(t0 - timedelta(minutes=1)))
    assert [e.event_id for e in again] == [e.event_id for e in events]


def test_list_changes_with_nothing_in_the_window(crm: HubSpotCrm, clock: FakeClock) -> None:
    assert list(crm.list_changes(clock() + timedelta(hours=1))) == []
