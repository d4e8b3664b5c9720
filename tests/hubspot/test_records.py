"""The referral's records in HubSpot: the referred contact with its "Referrer" association,
the deal created at qualification, re-reads that decide the status from the deal stage's
metadata, and writes that send only what changed (never ``hs_analytics_source``)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest
from pydantic import SecretStr

from referral_sync.crm import CrmPort
from referral_sync.errors import ConfigurationError, NotFound
from referral_sync.hubspot.adapter import HubSpotCrm
from referral_sync.models import (
    IntroStrength,
    Referee,
    Referral,
    ReferralStatus,
    Referrer,
    RoutingDecision,
)
from referral_sync.program.schema import CrmMapping
from referral_sync.settings import HubSpotSettings, Settings
from tests.conftest import FakeClock
from tests.hubspot.conftest import FakeTime, Seeded, make_crm
from tests.hubspot.double import TOKEN, HubSpotDouble
from tests.hubspot.double.objects import link, update

S = ReferralStatus


def referral(seeded: Seeded, now: datetime, *, email: str = "hana@kelp-two.example",
             owner: str = "101") -> Referral:
    return Referral(
        id="ref_01", program="default", submitted_at=now, owner_id=owner,
        referrer=Referrer(email="maria@acme.example", name="Maria Lopez",
                          contact_id=seeded.maria, account_id=seeded.acme),
        referee=Referee(first_name="Hana", last_name="Yusof", email=email,
                        company="Kelp Two Sdn Bhd", phone="+60 3 1234 5678"),
        intro_strength=IntroStrength.STRONG, routing_reason="the referrer's account executive",
        policy_version="2026.11", first_action="call")


def decision(owner: str = "101") -> RoutingDecision:
    return RoutingDecision(owner_id=owner, strategy="referrer_ae", reason="referrer's AE",
                           first_action="call", policy_version="2026.11", policy_hash="abc")


def created(crm: HubSpotCrm, seeded: Seeded, clock: FakeClock, **kwargs: str) -> Referral:
    ref = referral(seeded, clock(), **kwargs)
    ref.crm_record_id = crm.create_referral(ref, decision(kwargs.get("owner", "101"))).record_id
    return ref


def no_read_only_writes(double: HubSpotDouble) -> bool:
    return all("hs_analytics_source" not in json.dumps(r.body) for r in double.requests)


def test_create_referral_makes_the_contact_with_its_referrer_label(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    ref = referral(seeded, clock())
    record = crm.create_referral(ref, decision())
    assert record.record_type == "contact"
    assert record.url == f"https://app.hubspot.com/contacts/62515/record/0-1/{record.record_id}"
    props = double.portal.records["contacts"][record.record_id].properties
    assert props["email"] == "hana@kelp-two.example" and props["hubspot_owner_id"] == "101"
    assert (props["referral_id"], props["referral_status"], props["referral_referrer"]) == (
        "ref_01", "submitted", "maria@acme.example")
    assert props["referral_is_referral"] == "true" and props["referral_first_action"] == "call"
    assert props["lifecyclestage"] == "lead"
    label = crm.schema.referrer_label_id()
    linked = double.portal.links[("contacts", record.record_id, "contacts")][seeded.maria]
    assert linked == {("USER_DEFINED", label)}
    back = double.portal.links[("contacts", seeded.maria, "contacts")][record.record_id]
    [(_, inverse)] = back
    assert double.portal.assoc_types[("contacts", "contacts")][inverse]["label"] == "Referred"
    creates = [r for r in double.requests if r.method == "POST"]
    assert len(creates) == 1 and no_read_only_writes(double)


def test_owner_by_user_id_is_written_as_the_owner_id(crm: HubSpotCrm, seeded: Seeded,
                                                     double: HubSpotDouble,
                                                     clock: FakeClock) -> None:
    ref = created(crm, seeded, clock, owner="userId:9002")
    assert ref.crm_record_id is not None
    props = double.portal.records["contacts"][ref.crm_record_id].properties
    assert props["hubspot_owner_id"] == "102"


def test_a_deactivated_owner_is_not_written(crm: HubSpotCrm, seeded: Seeded,
                                            double: HubSpotDouble, clock: FakeClock) -> None:
    ref = created(crm, seeded, clock, owner="103")
    assert ref.crm_record_id is not None
    assert "hubspot_owner_id" not in double.portal.records["contacts"][ref.crm_record_id].properties


def test_queue_fallback_leaves_the_owner_empty(crm: HubSpotCrm, seeded: Seeded,
                                               double: HubSpotDouble, clock: FakeClock) -> None:
    ref = created(crm, seeded, clock, owner="queue:Referral Queue")
    assert ref.crm_record_id is not None
    assert "hubspot_owner_id" not in double.portal.records["contacts"][ref.crm_record_id].properties


def test_an_existing_contact_is_adopted_not_duplicated(crm: HubSpotCrm, seeded: Seeded,
                                                       double: HubSpotDouble,
                                                       clock: FakeClock) -> None:
    existing = double.portal.seed("contacts", email="hana@kelp-two.example",
                                  lifecyclestage="salesqualifiedlead")
    ref = created(crm, seeded, clock)
    assert ref.crm_record_id == existing.id
    props = existing.properties
    assert props["referral_id"] == "ref_01" and props["lifecyclestage"] == "salesqualifiedlead"
    assert seeded.maria in double.portal.links[("contacts", existing.id, "contacts")]
    assert len(double.portal.records["contacts"]) == 4  # the three seeded ones and Hana


def test_a_create_whose_answer_was_lost_is_not_repeated(crm: HubSpotCrm, seeded: Seeded,
                                                        double: HubSpotDouble,
                                                        clock: FakeClock) -> None:
    double.inject(502, None, method="POST", path="/objects/contacts$", process=True)
    ref = created(crm, seeded, clock)
    contacts = [r for r in double.portal.records["contacts"].values()
                if r.properties.get("referral_id") == "ref_01"]
    assert [c.id for c in contacts] == [ref.crm_record_id]


def test_qualification_creates_the_deal_which_is_the_referral_record_from_then_on(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    ref = created(crm, seeded, clock)
    assert ref.crm_record_id is not None
    update(double.portal, "contacts", ref.crm_record_id,
           {"properties": {"referral_status": "qualified"}})  # the AE qualifies it
    contact_before = dict(double.portal.records["contacts"][ref.crm_record_id].properties)
    ref.advance(S.QUALIFIED, clock())
    before = crm.api_calls()
    crm.update_referral(ref, fields={"referral_status": "qualified",
                                     "reward_status": "qualified: earned"})
    assert crm.api_calls() - before == 2  # pipelines (once per process), deal
    deal_id = ref.crm_opportunity_id
    assert deal_id is not None
    deal = double.portal.records["deals"][deal_id].properties
    assert (deal["referral_id"], deal["pipeline"], deal["dealstage"]) == (
        "ref_01", "default", "appointmentscheduled")
    assert deal["dealname"] == "Kelp Two Sdn Bhd (referral)"
    assert ref.crm_record_id is not None
    assert double.portal.links[("deals", deal_id, "contacts")][ref.crm_record_id] == {
        ("HUBSPOT_DEFINED", 3)}
    # Like a converted Lead: the contact keeps what the AE set; the deal's stage goes on.
    assert double.portal.records["contacts"][ref.crm_record_id].properties == contact_before
    assert crm.read_referral(ref).status is S.OPPORTUNITY
    before = crm.api_calls()
    crm.update_referral(ref, fields={"referral_status": "qualified",
                                     "reward_status": "qualified: earned"})
    assert crm.api_calls() == before
    assert no_read_only_writes(double)


def test_read_only_fields_are_never_sent(crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble,
                                         clock: FakeClock) -> None:
    ref = created(crm, seeded, clock)
    crm.update_referral(ref, fields={"hs_analytics_source": "REFERRALS",
                                     "referral_status": "submitted"})
    assert no_read_only_writes(double)


def test_read_follows_the_contact_until_a_deal_exists(crm: HubSpotCrm, seeded: Seeded,
                                                      double: HubSpotDouble,
                                                      clock: FakeClock) -> None:
    ref = created(crm, seeded, clock)
    assert ref.crm_record_id is not None
    snap = crm.read_referral(ref)
    assert (snap.status, snap.opportunity_id, snap.touched) == (S.SUBMITTED, None, False)
    update(double.portal, "contacts", ref.crm_record_id, {"properties": {
        "referral_status": "disqualified",
        "referral_disqualified_reason": "already working with a competitor"}})
    double.portal.records["contacts"][ref.crm_record_id].properties[
        "notes_last_contacted"] = "2026-11-23T10:00:00.000Z"
    snap = crm.read_referral(ref)
    assert snap.status is S.DISQUALIFIED and snap.touched
    assert snap.disqualified_reason == "already working with a competitor"


def test_a_deal_the_ae_created_makes_it_an_opportunity_and_gets_stamped(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    ref = created(crm, seeded, clock)
    assert ref.crm_record_id is not None
    deal = double.portal.seed("deals", dealname="Kelp Two", pipeline="default",
                              dealstage="qualifiedtobuy", amount="18000")
    link(double.portal, "deals", deal.id, "contacts", ref.crm_record_id, "HUBSPOT_DEFINED", 3)
    snap = crm.read_referral(ref)
    assert (snap.status, snap.opportunity_id, snap.amount) == (S.OPPORTUNITY, deal.id,
                                                               Decimal(18000))
    ref.crm_opportunity_id = snap.opportunity_id
    ref.advance(S.QUALIFIED, clock())
    ref.advance(S.OPPORTUNITY, clock())
    crm.update_referral(ref)
    assert deal.properties["referral_id"] == "ref_01"
    assert deal.properties["referral_referrer"] == "maria@acme.example"
    assert len(double.portal.records["deals"]) == 2  # the seeded Kelp deal and this one


def test_with_several_deals_the_referrals_own_deal_counts(crm: HubSpotCrm, seeded: Seeded,
                                                          double: HubSpotDouble,
                                                          clock: FakeClock) -> None:
    ref = created(crm, seeded, clock)
    assert ref.crm_record_id is not None
    portal = double.portal
    other = portal.seed("deals", dealname="Upsell", pipeline="default", dealstage="closedlost")
    ours = portal.seed("deals", dealname="Kelp Two", pipeline="7654321", dealstage="88888801",
                       referral_id="ref_01")
    gone = portal.seed("deals", dealname="Deleted", pipeline="default", dealstage="closedwon")
    for deal in (other, ours, gone):
        link(portal, "deals", deal.id, "contacts", ref.crm_record_id, "HUBSPOT_DEFINED", 3)
    gone.archived = True
    snap = crm.read_referral(ref)
    assert (snap.opportunity_id, snap.status) == (ours.id, S.CLOSED_WON)
    [batch_read] = [r for r in double.requests if r.path.endswith("/deals/batch/read")]
    assert len(batch_read.body["inputs"]) == 3  # answered 207: one of them no longer exists


@pytest.mark.parametrize(("pipeline", "stage", "status"), [
    ("default", "closedwon", S.CLOSED_WON), ("default", "closedlost", S.CLOSED_LOST),
    ("default", "contractsent", S.OPPORTUNITY), ("7654321", "88888801", S.CLOSED_WON),
    ("7654321", "88888802", S.CLOSED_LOST), ("7654321", "88888803", S.OPPORTUNITY)])
def test_closed_won_comes_from_stage_metadata(crm: HubSpotCrm, seeded: Seeded,
                                              double: HubSpotDouble, clock: FakeClock,
                                              pipeline: str, stage: str,
                                              status: ReferralStatus) -> None:
    ref = created(crm, seeded, clock)
    ref.advance(S.QUALIFIED, clock())
    crm.update_referral(ref)
    assert ref.crm_opportunity_id is not None
    update(double.portal, "deals", ref.crm_opportunity_id,
           {"properties": {"pipeline": pipeline, "dealstage": stage}})
    assert crm.read_referral(ref).status is status


def test_a_stage_added_later_is_found_by_refreshing_the_cache(crm: HubSpotCrm, seeded: Seeded,
                                                              double: HubSpotDouble,
                                                              clock: FakeClock,
                                                              fake_time: FakeTime) -> None:
    ref = created(crm, seeded, clock)
    ref.advance(S.QUALIFIED, clock())
    crm.update_referral(ref)
    assert ref.crm_opportunity_id is not None
    double.portal.pipelines[0]["stages"].append({
        "id": "999000", "label": "Won via partner", "displayOrder": 9, "archived": False,
        "metadata": {"isClosed": "true", "probability": "1.0"},
        "createdAt": "2026-11-23T00:00:00.000Z", "updatedAt": "2026-11-23T00:00:00.000Z"})
    update(double.portal, "deals", ref.crm_opportunity_id, {"properties": {"dealstage": "999000"}})
    fake_time.sleep(61)
    assert crm.read_referral(ref).status is S.CLOSED_WON
    assert double.count("GET", "/pipelines/deals") == 2


def test_a_deleted_contact_is_not_found(crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble,
                                        clock: FakeClock) -> None:
    ref = created(crm, seeded, clock)
    assert ref.crm_record_id is not None
    double.portal.records["contacts"][ref.crm_record_id].archived = True
    with pytest.raises(NotFound):
        crm.read_referral(ref)
    ref.advance(S.DISQUALIFIED, clock())
    with pytest.raises(NotFound):
        crm.update_referral(ref, fields={"reward_status": "x"})


def test_deal_at_submission_when_configured(double: HubSpotDouble, clock: FakeClock,
                                            fake_time: FakeTime, seeded: Seeded) -> None:
    crm = make_crm(double, clock, fake_time,
                   mapping=CrmMapping(create_deal_at_qualification=False))
    ref = referral(seeded, clock())
    contact = crm.create_referral(ref, decision()).record_id
    [deal] = [d for d in double.portal.records["deals"].values()
              if d.properties.get("referral_id") == "ref_01"]
    assert contact in double.portal.links[("deals", deal.id, "contacts")]
    assert ref.crm_opportunity_id == deal.id


def test_from_settings_points_the_sdk_at_the_configured_base_url(double: HubSpotDouble,
                                                                 seeded: Seeded) -> None:
    settings = Settings(_env_file=None, crm="hubspot",
                        hubspot=HubSpotSettings(access_token=SecretStr(TOKEN),
                                                base_url=double.url, portal_id="62515",
                                                timezone="Asia/Kuala_Lumpur"))
    crm = HubSpotCrm.from_settings(settings, CrmMapping())
    assert isinstance(crm, CrmPort) and crm.provider == "hubspot"
    assert crm.schema_drift() == []
    assert crm.api_calls() == 10 == double.count()
    with pytest.raises(ConfigurationError):
        HubSpotCrm.from_settings(Settings(_env_file=None), CrmMapping())
