"""Reward records (custom object, or deal properties where custom objects are not allowed)
and tasks: one record per key however often a write is retried."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from referral_sync.crm import CrmTask
from referral_sync.errors import CrmRetryableError
from referral_sync.hubspot.adapter import HubSpotCrm
from referral_sync.models import Milestone, ReferralStatus, RewardEntry, RewardState
from tests.conftest import FakeClock
from tests.hubspot.conftest import FakeTime, Seeded, install, make_crm, seed
from tests.hubspot.double import HubSpotDouble
from tests.hubspot.test_records import created


def entry(milestone: Milestone, clock: FakeClock, **changes: object) -> RewardEntry:
    values: dict[str, object] = {
        "referral_id": "ref_01", "milestone": milestone, "referrer_email": "maria@acme.example",
        "program": "default", "amount": Decimal("200.00"), "earned_at": clock(),
        "tier": "Bronze", **changes}
    return RewardEntry.model_validate(values)


def rewards_in(double: HubSpotDouble) -> list[dict[str, str]]:
    [type_id] = double.portal.schemas
    return [r.properties for r in double.portal.records[type_id].values()]


def test_reward_record_per_milestone_associated_to_referrer_contact_and_deal(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    ref = created(crm, seeded, clock)
    before = crm.api_calls()
    qualified_id = crm.upsert_reward(entry(Milestone.QUALIFIED, clock))
    assert crm.api_calls() - before == 2  # the reward object's id (once per process), create
    ref.advance(ReferralStatus.QUALIFIED, clock())
    crm.update_referral(ref)
    before = crm.api_calls()
    won_id = crm.upsert_reward(entry(Milestone.CLOSED_WON, clock, amount=Decimal(1000)))
    assert crm.api_calls() - before == 1
    [type_id] = double.portal.schemas
    records = double.portal.records[type_id]
    assert records[qualified_id].properties["reward_key"] == "ref_01:qualified"
    assert records[won_id].properties["amount"] == "1000"
    won_links = {to: t for (f, rid, to), t in double.portal.links.items()
                 if f == type_id and rid == won_id}
    assert set(won_links["contacts"]) == {seeded.maria, ref.crm_record_id}
    assert set(won_links["deals"]) == {ref.crm_opportunity_id}
    assert set(double.portal.links[(type_id, qualified_id, "contacts")]) == {
        seeded.maria, ref.crm_record_id}


def test_retried_and_later_writes_update_the_same_reward(crm: HubSpotCrm, seeded: Seeded,
                                                         double: HubSpotDouble,
                                                         clock: FakeClock) -> None:
    created(crm, seeded, clock)
    first = crm.upsert_reward(entry(Milestone.QUALIFIED, clock))
    again = crm.upsert_reward(entry(Milestone.QUALIFIED, clock))  # a retried job: no crm_id
    assert again == first
    approved = crm.upsert_reward(entry(Milestone.QUALIFIED, clock, crm_id=first,
                                       state=RewardState.APPROVED))
    assert approved == first
    [reward] = rewards_in(double)
    assert reward["state"] == "approved"


def test_a_reward_create_whose_answer_was_lost_is_not_repeated(crm: HubSpotCrm, seeded: Seeded,
                                                               double: HubSpotDouble,
                                                               clock: FakeClock) -> None:
    created(crm, seeded, clock)
    crm.schema.reward_schema()
    double.inject(503, None, method="POST", path=r"/objects/2-\d+$", process=True)
    reward_id = crm.upsert_reward(entry(Milestone.QUALIFIED, clock))
    [reward] = rewards_in(double)
    assert reward["hs_object_id"] == reward_id


@pytest.fixture
def fallback_crm(double: HubSpotDouble, clock: FakeClock, fake_time: FakeTime) -> HubSpotCrm:
    double.reset(clock=clock, enterprise=False)
    install(double, clock)
    return make_crm(double, clock, fake_time)


def test_fallback_writes_rewards_to_the_deal(fallback_crm: HubSpotCrm, double: HubSpotDouble,
                                             clock: FakeClock) -> None:
    seeded = seed(double.portal, clock())
    ref = created(fallback_crm, seeded, clock)
    # Qualified before the deal exists: held, then written with the deal's creation.
    assert fallback_crm.upsert_reward(entry(Milestone.QUALIFIED, clock)) == ""
    ref.advance(ReferralStatus.QUALIFIED, clock())
    fallback_crm.update_referral(ref)
    assert ref.crm_opportunity_id is not None
    deal = double.portal.records["deals"][ref.crm_opportunity_id].properties
    assert (deal["referral_reward_qualified_amount"], deal["referral_reward_qualified_state"]) == (
        "200.00", "earned")
    before = fallback_crm.api_calls()
    deal_id = fallback_crm.upsert_reward(entry(Milestone.CLOSED_WON, clock, amount=Decimal(1000)))
    assert fallback_crm.api_calls() - before == 1 and deal_id == ref.crm_opportunity_id
    assert deal["referral_reward_closed_won_amount"] == "1000"
    assert deal["referral_reward_currency"] == "USD"


def test_fallback_finds_the_deal_by_referral_id_in_a_fresh_process(
        fallback_crm: HubSpotCrm, double: HubSpotDouble, clock: FakeClock,
        fake_time: FakeTime) -> None:
    seeded = seed(double.portal, clock())
    ref = created(fallback_crm, seeded, clock)
    ref.advance(ReferralStatus.QUALIFIED, clock())
    fallback_crm.update_referral(ref)
    fresh = make_crm(double, clock, fake_time)
    deal_id = fresh.upsert_reward(entry(Milestone.CLOSED_WON, clock, state=RewardState.REVERSED))
    assert deal_id == ref.crm_opportunity_id
    patch = double.requests[-1]
    assert patch.method == "PATCH" and patch.query["idProperty"] == ["referral_id"]


def test_task_for_the_owner_on_the_referral_contact(crm: HubSpotCrm, seeded: Seeded,
                                                    double: HubSpotDouble,
                                                    clock: FakeClock) -> None:
    ref = created(crm, seeded, clock)
    assert ref.crm_record_id is not None
    before = crm.api_calls()
    task_id = crm.create_task(CrmTask(
        subject="Call Hana Yusof (referred by Maria Lopez)", owner_id="101",
        what_id=ref.crm_record_id, kind="call", due=clock() + timedelta(hours=24),
        description="Why you: the referrer's account executive", key="ref_01:first-action"))
    assert crm.api_calls() - before == 2  # look for the key, create
    task = double.portal.records["tasks"][task_id].properties
    assert (task["hs_task_type"], task["hubspot_owner_id"], task["hs_task_status"]) == (
        "CALL", "101", "NOT_STARTED")
    assert task["hs_timestamp"] == "2026-11-24T09:00:00.000Z"
    assert task["referral_task_key"] == "ref_01:first-action"
    assert double.portal.links[("tasks", task_id, "contacts")][ref.crm_record_id] == {
        ("HUBSPOT_DEFINED", 204)}


def test_a_keyed_task_is_created_once_across_retries_and_processes(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock,
        fake_time: FakeTime) -> None:
    ref = created(crm, seeded, clock)
    assert ref.crm_record_id is not None
    task = CrmTask(subject="E-mail Hana", owner_id="queue:Referral Queue",
                   what_id=ref.crm_record_id, kind="email", key="ref_01:first-action")
    double.inject(500, None, method="POST", path="/objects/tasks$", process=True)
    with pytest.raises(CrmRetryableError):
        crm.create_task(task)
    assert double.count("POST", "/objects/tasks$") == 1  # never replayed by the transport
    task_id = crm.create_task(task)
    before = crm.api_calls()
    assert crm.create_task(task) == task_id
    assert crm.api_calls() == before  # remembered in this process
    assert make_crm(double, clock, fake_time).create_task(task) == task_id  # found by its key
    [stored] = double.portal.records["tasks"].values()
    assert stored.id == task_id and "hubspot_owner_id" not in stored.properties
    unkeyed = task.model_copy(update={"key": None})
    assert crm.create_task(unkeyed) != crm.create_task(unkeyed)


def test_tasks_can_hang_on_a_deal(crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble,
                                  clock: FakeClock) -> None:
    task_id = crm.create_task(CrmTask(subject="Ask for a referral", owner_id="101",
                                      what_id=f"deal:{seeded.kelp_deal}", kind="todo"))
    assert seeded.kelp_deal in double.portal.links[("tasks", task_id, "deals")]
    assert double.portal.records["tasks"][task_id].properties["hs_task_type"] == "TODO"
