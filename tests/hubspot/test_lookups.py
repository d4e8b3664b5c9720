"""Intake reads on HubSpot: duplicate candidates, the referrer's context, the account owning a
domain and owner references (owner id, not user id)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from referral_sync.crm import DuplicateKind
from referral_sync.hubspot.adapter import HubSpotCrm
from referral_sync.models import OwnerKind
from referral_sync.program.schema import CrmMapping
from tests.conftest import FakeClock
from tests.hubspot.conftest import FakeTime, Seeded, make_crm
from tests.hubspot.double import HubSpotDouble


def calls_of(crm: HubSpotCrm, action: object) -> int:
    before = crm.api_calls()
    if callable(action):
        action()
    return crm.api_calls() - before


def test_customer_by_domain_and_by_company_name(crm: HubSpotCrm, seeded: Seeded,
                                                clock: FakeClock) -> None:
    since = clock() - timedelta(days=365)
    by_domain = crm.find_duplicates("new.person@acme.example", "acme.example", "acme widgets",
                                    since)
    kinds = {(c.record_type, c.kind, c.matched_on) for c in by_domain}
    assert ("company", DuplicateKind.CUSTOMER, "domain") in kinds
    # Maria's contact is at that domain and a customer too: reported with her account.
    maria = next(c for c in by_domain if c.record_type == "contact")
    assert (maria.kind, maria.account_id) == (DuplicateKind.CUSTOMER, seeded.acme)
    by_name = crm.find_duplicates("someone@gmail.com", None, "acme widgets", since)
    assert [(c.record_id, c.kind, c.matched_on) for c in by_name] == [
        (seeded.acme, DuplicateKind.CUSTOMER, "company")]
    assert crm.api_calls() == 4


def test_open_pipeline_earlier_referral_and_known_contact(crm: HubSpotCrm, seeded: Seeded,
                                                          double: HubSpotDouble,
                                                          clock: FakeClock) -> None:
    double.portal.seed("contacts", email="old.referral@other.example", referral_id="ref_0",
                       lifecyclestage="lead")
    double.portal.seed("contacts", email="known@other.example", lifecyclestage="lead")
    since = clock() - timedelta(days=365)
    kelp = crm.find_duplicates("hana@kelp.example", "kelp.example", "kelp robotics", since)
    assert [(c.record_id, c.kind) for c in kelp] == [(seeded.kelp, DuplicateKind.OPEN_PIPELINE)]
    earlier = crm.find_duplicates("x@other.example", "other.example", "other", since)
    assert [(c.kind, c.matched_on) for c in earlier] == [(DuplicateKind.EARLIER_REFERRAL,
                                                          "domain")]
    known = crm.find_duplicates("known@other.example", None, "zzz", since)
    assert [(c.kind, c.matched_on) for c in known] == [(DuplicateKind.CONTACT, "email")]
    assert known[0].created_at is not None


def test_prospects_without_pipeline_are_not_duplicates(crm: HubSpotCrm, double: HubSpotDouble,
                                                       clock: FakeClock) -> None:
    double.portal.seed("companies", name="Quiet Prospect", domain="quiet.example",
                       lifecyclestage="lead")
    assert crm.find_duplicates("a@quiet.example", "quiet.example", "quiet prospect",
                               clock()) == []


def test_load_referrer_reads_contact_and_primary_company(crm: HubSpotCrm, seeded: Seeded) -> None:
    context = crm.load_referrer("MARIA@acme.example")
    assert context is not None
    assert (context.contact_id, context.name, context.account_id) == (seeded.maria,
                                                                      "Maria Lopez", seeded.acme)
    assert context.is_paying_customer and context.account_type == "customer"
    assert context.customer_since == datetime(2025, 6, 1, tzinfo=UTC)
    assert (context.owner_id, context.owner_active, context.account_status) == ("101", True,
                                                                                None)
    assert context.account_domain == "acme.example"
    assert crm.api_calls() == 3  # contact, company, owner list (cached from now on)
    assert calls_of(crm, lambda: crm.load_referrer("maria@acme.example")) == 2


def test_referrer_standing_tenure_fallback_and_inactive_owner(crm: HubSpotCrm, seeded: Seeded,
                                                              clock: FakeClock) -> None:
    ben = crm.load_referrer("ben@bright.example")
    assert ben is not None
    assert ben.account_status == "at_risk"
    assert (ben.owner_id, ben.owner_active) == ("103", False)
    nina = crm.load_referrer("nina@newco.example")
    assert nina is not None and nina.customer_since == clock() - timedelta(days=20)


def test_unknown_referrer_and_referrer_without_company(crm: HubSpotCrm, double: HubSpotDouble,
                                                       seeded: Seeded) -> None:
    assert crm.load_referrer("nobody@nowhere.example") is None
    double.portal.seed("contacts", email="solo+refer@free.example", firstname="Solo")
    solo = crm.load_referrer("solo+refer@free.example")
    assert solo is not None and solo.account_id is None and not solo.is_paying_customer


def test_mapped_usage_and_extra_fields(double: HubSpotDouble, clock: FakeClock,
                                       fake_time: FakeTime, seeded: Seeded) -> None:
    double.portal.records["companies"][seeded.acme].properties["active_seats"] = "12"
    mapping = CrmMapping(usage_field="active_seats", extra_fields=["industry"])
    crm = make_crm(double, clock, fake_time, mapping=mapping)
    context = crm.load_referrer("maria@acme.example")
    assert context is not None and context.usage_active is True
    assert "industry" in context.fields
    nina = crm.load_referrer("nina@newco.example")
    assert nina is not None and nina.usage_active is False


def test_account_by_domain_reuses_the_duplicate_search(crm: HubSpotCrm, seeded: Seeded,
                                                       clock: FakeClock) -> None:
    crm.get_owner("101")  # the owner list, read once per process
    crm.find_duplicates("new@acme.example", "acme.example", "acme widgets", clock())
    before = crm.api_calls()
    account = crm.find_account_by_domain("acme.example")
    assert crm.api_calls() == before
    assert account is not None and (account.account_id, account.owner_id) == (seeded.acme, "101")
    assert calls_of(crm, lambda: crm.find_account_by_domain("newco.example")) == 1
    assert crm.find_account_by_domain("nobody.example") is None


def test_owner_references(crm: HubSpotCrm, double: HubSpotDouble, seeded: Seeded) -> None:
    aisha = crm.get_owner("101")
    assert aisha is not None and (aisha.name, aisha.kind, aisha.active) == (
        "Aisha Rahman", OwnerKind.USER, True)
    by_email = crm.get_owner("email:DANIEL@vendor.example")
    assert by_email is not None and by_email.id == "102"
    by_user = crm.get_owner("userId:9001")
    assert by_user is not None and by_user.id == "101"
    queue = crm.get_owner("queue:Referral Queue")
    assert queue is not None and (queue.kind, queue.id) == (OwnerKind.QUEUE,
                                                            "queue:Referral Queue")
    assert crm.get_owner("999") is None
    assert crm.api_calls() == 2  # the owner list once, one lookup of an unknown id
    former = crm.get_owner("103")
    assert former is not None and former.active is False


def test_a_queue_owner_in_hubspot_is_used(double: HubSpotDouble, clock: FakeClock,
                                          fake_time: FakeTime) -> None:
    double.portal.add_owner("150", "queue@vendor.example", "Referral", "Queue", kind="QUEUE")
    crm = make_crm(double, clock, fake_time)
    queue = crm.get_owner("queue:referral queue")
    assert queue is not None and (queue.id, queue.kind) == ("150", OwnerKind.QUEUE)
