"""The batched port calls on HubSpot: a submission's reads in two searches, the referral's
contact and its tasks in two creates, an event's effects in one call per object type (a
reward and the notice announcing it in one); and exactly-once under retries (ambiguous
failures, 207 partial failures, other processes)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from referral_sync.crm import CrmTask, DuplicateKind, IntakeLookup, load_intake_one_by_one
from referral_sync.errors import CrmPermanentError, CrmRetryableError
from referral_sync.hubspot.adapter import HubSpotCrm
from referral_sync.models import Milestone, Referral, ReferralStatus, RewardEntry
from tests.conftest import FakeClock
from tests.hubspot.conftest import FakeTime, Seeded, install, make_crm, seed
from tests.hubspot.double import HubSpotDouble
from tests.hubspot.test_records import decision, referral

S = ReferralStatus


def lookup(clock: FakeClock, *, referrer: str = "maria@acme.example",
           referee: str = "hana@kelp-two.example", company_key: str = "kelp two") -> IntakeLookup:
    return IntakeLookup(
        referrer_email=referrer, referee_email=referee, domain=referee.split("@")[1],
        company_key=company_key, since=clock() - timedelta(days=365),
        owner_refs=frozenset({"queue:Referral Queue", "email:daniel@vendor.example"}),
        match_account=True)


def first_action(key: str = "ref_01:first-action") -> CrmTask:
    return CrmTask(subject="Call Hana Yusof", owner_id="101", kind="call", key=key)


def notice(template: str, n: int, announces: Milestone | None = None) -> CrmTask:
    return CrmTask(subject=f"Referrer notified: {template}", owner_id="101", kind="activity",
                   description=f"Maria was told: {template}", key=f"notice:ref_01:{template}:{n}",
                   reward_key=f"ref_01:{announces.value}" if announces else None)


def rewards_by_key(double: HubSpotDouble) -> dict[str, dict[str, str]]:
    [type_id] = double.portal.schemas
    return {r.properties["reward_key"]: r.properties
            for r in double.portal.records[type_id].values() if not r.archived}


def reward(milestone: Milestone, clock: FakeClock, **changes: object) -> RewardEntry:
    values: dict[str, object] = {
        "referral_id": "ref_01", "milestone": milestone, "referrer_email": "maria@acme.example",
        "program": "default", "amount": Decimal("200.00"), "earned_at": clock(), **changes}
    return RewardEntry.model_validate(values)


def tasks_by_key(double: HubSpotDouble) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for task in double.portal.records["tasks"].values():
        out.setdefault(task.properties.get("referral_task_key", ""), []).append(task.id)
    return out


def searches(double: HubSpotDouble, object_type: str) -> int:
    return double.count("POST", f"/objects/{object_type}/search$")


# -- a submission's reads ------------------------------------------------------------------
def test_intake_reads_are_two_searches_and_agree_with_the_single_reads(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock,
        fake_time: FakeTime) -> None:
    found = crm.load_intake(lookup(clock))
    assert (searches(double, "contacts"), searches(double, "companies")) == (1, 1)
    assert double.count("GET", "/owners/$") == 1 and crm.api_calls() == 3
    assert found.referrer is not None and found.referrer.account_id == seeded.acme
    assert found.referrer.is_paying_customer and found.referrer.owner_id == "101"
    assert found.duplicates == [] and found.account_match is None
    assert set(found.owners) == {"queue:Referral Queue", "email:daniel@vendor.example", "101"}
    assert found.owners["101"] is not None and found.owners["101"].name == "Aisha Rahman"
    alone = load_intake_one_by_one(make_crm(double, clock, fake_time), lookup(clock))
    assert (alone.referrer, alone.duplicates) == (found.referrer, found.duplicates)


def test_the_referrer_is_not_a_duplicate_of_a_referee_elsewhere(
        crm: HubSpotCrm, seeded: Seeded, clock: FakeClock) -> None:
    # Maria (a customer contact) comes back from the same search, for being the referrer.
    found = crm.load_intake(lookup(clock, referee="new.person@acme.example",
                                   company_key="acme widgets"))
    kinds = {(c.record_type, c.record_id, c.kind) for c in found.duplicates}
    assert ("company", seeded.acme, DuplicateKind.CUSTOMER) in kinds
    assert ("contact", seeded.maria, DuplicateKind.CUSTOMER) in kinds  # same domain: it is
    assert found.account_match is not None and found.account_match.account_id == seeded.acme
    elsewhere = crm.load_intake(lookup(clock))
    assert seeded.maria not in {c.record_id for c in elsewhere.duplicates}


def test_a_referrer_search_does_not_show_yet_is_read_directly(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    # Search lags writes by moments: a contact made just now may be missing from it.
    double.inject(200, {"total": 0, "results": []}, method="POST", path="/contacts/search$")
    found = crm.load_intake(lookup(clock))
    assert found.referrer is not None and found.referrer.contact_id == seeded.maria
    assert found.referrer.account_id == seeded.acme
    assert double.count("GET", "/objects/contacts/maria") == 1
    unknown = crm.load_intake(lookup(clock, referrer="nobody@nowhere.example"))
    assert unknown.referrer is None


# -- the referral's contact and its tasks ------------------------------------------------
def test_a_new_contact_gets_its_tasks_in_one_create_without_a_search(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    crm.schema.referrer_label_id(), crm.get_owner("101")  # read once per process
    ref = referral(seeded, clock())
    before = crm.api_calls()
    record = crm.create_referral(ref, decision(), tasks=[first_action(),
                                                         notice("submitted", 1)])
    assert crm.api_calls() - before == 2  # contact, tasks
    assert searches(double, "tasks") == 0
    [batch] = [r for r in double.requests if r.path.endswith("/tasks/batch/create")]
    assert len(batch.body["inputs"]) == 2
    keys = tasks_by_key(double)
    assert sorted(keys) == ["notice:ref_01:submitted:1", "ref_01:first-action"]
    for [task_id] in keys.values():
        assert record.record_id in double.portal.links[("tasks", task_id, "contacts")]


def test_intake_retried_after_its_tasks_create_was_lost_makes_no_second_task(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock,
        fake_time: FakeTime) -> None:
    tasks = [first_action(), notice("submitted", 1)]
    # HubSpot made the tasks, but the answer never arrived (the pool does not replay it).
    double.inject(502, None, method="POST", path="/tasks/batch/create$", process=True)
    with pytest.raises(CrmRetryableError):
        crm.create_referral(referral(seeded, clock()), decision(), tasks=tasks)
    assert double.count("POST", "/tasks/batch/create$") == 1
    other = make_crm(double, clock, fake_time)  # the deferred job, in another worker
    record = other.create_referral(referral(seeded, clock()), decision(), tasks=tasks)
    assert {k: len(v) for k, v in tasks_by_key(double).items()} == {
        "notice:ref_01:submitted:1": 1, "ref_01:first-action": 1}
    # The contact existed (409): one search for both keys, nothing created again.
    [search] = [r for r in double.requests if r.path.endswith("/tasks/search")]
    [[flt]] = [g["filters"] for g in search.body["filterGroups"]]
    assert flt["operator"] == "IN" and len(flt["values"]) == 2
    assert record.record_id in double.portal.records["contacts"]


def test_a_contact_create_replayed_after_a_lost_answer_looks_for_its_tasks(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    # Made, answer lost: the transport replays the create, which finds the e-mail taken.
    double.inject(502, None, method="POST", path="/objects/contacts$", process=True)
    record = crm.create_referral(referral(seeded, clock()), decision(),
                                 tasks=[first_action(), notice("submitted", 1)])
    assert double.count("POST", "/objects/contacts$") == 2
    assert searches(double, "tasks") == 1  # not known to be new: it might have tasks
    assert len(double.portal.records["tasks"]) == 2
    assert [c.id for c in double.portal.records["contacts"].values()
            if c.properties.get("referral_id") == "ref_01"] == [record.record_id]


def test_a_207_keeps_the_tasks_made_and_a_retry_makes_only_the_rest(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    ref = referral(seeded, clock())
    ref.crm_record_id = crm.create_referral(ref, decision()).record_id
    good = notice("disqualified", 2)
    bad = CrmTask(subject="Look at the deal", owner_id="101", what_id="deal:99999999",
                  key="ref_01:deal-check")
    with pytest.raises(CrmPermanentError, match="created 1 of 2"):
        crm.apply_changes(ref, tasks=[good, bad])
    assert list(tasks_by_key(double)) == [good.key]
    fixed = bad.model_copy(update={"what_id": f"deal:{seeded.kelp_deal}"})
    applied = crm.apply_changes(ref, tasks=[good, fixed])
    assert {k: len(v) for k, v in tasks_by_key(double).items()} == {
        good.key: 1, fixed.key: 1}
    assert set(applied.tasks) == {good.key, fixed.key}


# -- an event's effects --------------------------------------------------------------------
def qualified(crm: HubSpotCrm, seeded: Seeded, clock: FakeClock) -> Referral:
    ref = referral(seeded, clock())
    ref.crm_record_id = crm.create_referral(ref, decision()).record_id
    crm.read_referral(ref)
    ref.advance(S.QUALIFIED, clock())
    return ref


def fields_of(ref: Referral) -> dict[str, object]:
    return {"referral_status": ref.status.value, "reward_status": "qualified: earned"}


def test_qualification_writes_the_deal_and_the_reward_with_its_notice_in_two_calls(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    ref = qualified(crm, seeded, clock)
    crm.schema.reward_schema()
    contact_before = dict(double.portal.records["contacts"][str(ref.crm_record_id)].properties)
    before = len(double.requests)
    applied = crm.apply_changes(ref, fields=fields_of(ref),
                                rewards=[reward(Milestone.QUALIFIED, clock)],
                                tasks=[notice("qualified", 2, Milestone.QUALIFIED)])
    paths = [(r.method, r.path.rsplit("/", 1)[-1]) for r in double.requests[before:]]
    [type_id] = double.portal.schemas
    assert paths == [("GET", "deals"), ("POST", "deals"), ("POST", type_id)]
    assert paths[0] == ("GET", "deals")  # the pipelines, once per process
    deal = ref.crm_opportunity_id
    assert deal is not None and applied.tasks == {}
    reward_id = applied.rewards["ref_01:qualified"]
    assert deal in double.portal.links[(type_id, reward_id, "deals")]
    assert ref.crm_record_id in double.portal.links[(type_id, reward_id, "contacts")]
    stored = rewards_by_key(double)["ref_01:qualified"]
    assert stored["referrer_notice"] == "Referrer notified: qualified\n\nMaria was told: qualified"
    assert stored["referrer_notified_at"]
    assert tasks_by_key(double) == {}
    # The deal is the referral's record now: the contact keeps what the AE set.
    contact = double.portal.records["contacts"][str(ref.crm_record_id)].properties
    assert contact == contact_before


def test_a_retried_event_in_another_worker_duplicates_neither_reward_nor_notice(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock,
        fake_time: FakeTime) -> None:
    ref = qualified(crm, seeded, clock)
    rewards = [reward(Milestone.QUALIFIED, clock)]
    tasks = [notice("qualified", 2, Milestone.QUALIFIED)]
    crm.apply_changes(ref, fields=fields_of(ref), rewards=rewards, tasks=tasks)
    # The worker died before the ledger kept the reward's id; another process runs the job
    # again, knowing only what the store knows.
    other = make_crm(double, clock, fake_time)
    applied = other.apply_changes(ref, fields=fields_of(ref), rewards=rewards, tasks=tasks)
    assert set(rewards_by_key(double)) == {"ref_01:qualified"}
    assert applied.rewards["ref_01:qualified"] == crm.apply_changes(ref, rewards=rewards).rewards[
        "ref_01:qualified"]
    assert rewards_by_key(double)["ref_01:qualified"]["referrer_notice"].startswith(
        "Referrer notified: qualified")
    assert tasks_by_key(double) == {} and searches(double, "tasks") == 0
    assert [d.id for d in double.portal.records["deals"].values()
            if d.properties.get("referral_id") == "ref_01"] == [ref.crm_opportunity_id]


def test_a_fresh_process_associates_the_reward_with_what_the_store_knows(
        double: HubSpotDouble, crm: HubSpotCrm, seeded: Seeded, clock: FakeClock,
        fake_time: FakeTime) -> None:
    ref = qualified(crm, seeded, clock)
    crm.apply_changes(ref, fields=fields_of(ref))
    fresh = make_crm(double, clock, fake_time)
    applied = fresh.apply_changes(ref, rewards=[reward(Milestone.QUALIFIED, clock)])
    [type_id] = double.portal.schemas
    reward_id = applied.rewards["ref_01:qualified"]
    assert set(double.portal.links[(type_id, reward_id, "deals")]) == {ref.crm_opportunity_id}
    assert set(double.portal.links[(type_id, reward_id, "contacts")]) == {
        ref.crm_record_id, ref.referrer.contact_id}


def test_a_reward_create_whose_answer_was_lost_counts_as_existing(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    ref = qualified(crm, seeded, clock)
    crm.schema.reward_schema()
    # Created, answer lost: the transport replays the create, which meets the unique key.
    double.inject(503, None, method="POST", path=r"/objects/2-\d+$", process=True)
    crm.apply_changes(ref, fields=fields_of(ref), rewards=[reward(Milestone.QUALIFIED, clock)],
                      tasks=[notice("qualified", 2, Milestone.QUALIFIED)])
    [stored] = rewards_by_key(double).values()
    assert stored["referrer_notice"].startswith("Referrer notified: qualified")


def test_rewards_of_two_milestones_in_one_batch_with_one_made_before(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    ref = qualified(crm, seeded, clock)
    crm.apply_changes(ref, fields=fields_of(ref), rewards=[reward(Milestone.QUALIFIED, clock)])
    # A crash before the ledger kept the id; the next event walks to closed-won at once.
    for step in (S.OPPORTUNITY, S.CLOSED_WON):
        ref.advance(step, clock())
    entries = [reward(Milestone.QUALIFIED, clock, state="approved"),
               reward(Milestone.CLOSED_WON, clock, amount=Decimal(1000))]
    before = len(double.requests)
    applied = crm.apply_changes(ref, fields=fields_of(ref), rewards=entries,
                                tasks=[notice("qualified", 2, Milestone.QUALIFIED),
                                       notice("closed_won", 4, Milestone.CLOSED_WON)])
    sent = [r for r in double.requests[before:]]
    [create] = [r for r in sent if r.path.endswith("/batch/create") and "2-" in r.path]
    assert len(create.body["inputs"]) == 2  # a 207: the qualified one exists already
    [update] = [r for r in sent if r.method == "PATCH" and "2-" in r.path]
    assert update.path.endswith("/ref_01:qualified") and update.query["idProperty"] == [
        "reward_key"]
    assert not [r for r in sent if "/tasks" in r.path]  # each notice went with its reward
    stored = rewards_by_key(double)
    assert {k: (v["state"], v["referrer_notice"].split("\n")[0]) for k, v in stored.items()} == {
        "ref_01:qualified": ("approved", "Referrer notified: qualified"),
        "ref_01:closed_won": ("earned", "Referrer notified: closed_won")}
    assert set(applied.rewards) == set(stored)


def test_fallback_rewards_go_out_with_the_deal_creation(
        double: HubSpotDouble, clock: FakeClock, fake_time: FakeTime) -> None:
    double.reset(clock=clock, enterprise=False)
    install(double, clock)
    seeded = seed(double.portal, clock())
    crm = make_crm(double, clock, fake_time)
    ref = qualified(crm, seeded, clock)
    applied = crm.apply_changes(ref, fields=fields_of(ref),
                                rewards=[reward(Milestone.QUALIFIED, clock)],
                                tasks=[notice("qualified", 2, Milestone.QUALIFIED)])
    assert double.count("PATCH", "/objects/deals/") == 0 and tasks_by_key(double) == {}
    deal = double.portal.records["deals"][str(ref.crm_opportunity_id)].properties
    assert deal["referral_reward_qualified_amount"] == "200.00"
    assert deal["referral_reward_qualified_notice"].startswith("Referrer notified: qualified")
    assert applied.rewards == {"ref_01:qualified": ref.crm_opportunity_id}


def test_a_batch_refused_whole_for_existing_keys_updates_them_by_key(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    ref = qualified(crm, seeded, clock)
    entries = [reward(Milestone.QUALIFIED, clock), reward(Milestone.CLOSED_WON, clock)]
    first = crm.apply_changes(ref, rewards=entries)
    # Some portals refuse the whole batch when one unique value exists: 409, no 207.
    double.inject(409, {"status": "error", "category": "CONFLICT", "correlationId": "c",
                        "message": "Duplicate values found for unique property reward_key"},
                  method="POST", path=r"/2-\d+/batch/create$")
    again = crm.apply_changes(ref, rewards=[e.model_copy(update={"state": "approved"})
                                            for e in entries])
    assert again.rewards == first.rewards
    [update] = [r for r in double.requests if r.path.endswith("/batch/update")]
    assert {i["idProperty"] for i in update.body["inputs"]} == {"reward_key"}
    [type_id] = double.portal.schemas
    assert {r.properties["state"] for r in double.portal.records[type_id].values()} == {
        "approved"}


def test_known_rewards_are_updated_in_one_batch_and_a_deleted_one_made_again(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    ref = qualified(crm, seeded, clock)
    made = crm.apply_changes(ref, rewards=[reward(Milestone.QUALIFIED, clock),
                                           reward(Milestone.CLOSED_WON, clock)]).rewards
    [type_id] = double.portal.schemas
    double.portal.records[type_id][made["ref_01:qualified"]].archived = True
    before = len(double.requests)
    reversed_ = [reward(m, clock, state="reversed", crm_id=made[f"ref_01:{m.value}"])
                 for m in (Milestone.QUALIFIED, Milestone.CLOSED_WON)]
    again = crm.apply_changes(ref, rewards=reversed_)
    assert [r.path.rsplit("/", 1)[-1] for r in double.requests[before:]] == [
        "update", type_id]  # one batch update (207: one gone), one create
    assert again.rewards["ref_01:closed_won"] == made["ref_01:closed_won"]
    live = [r for r in double.portal.records[type_id].values() if not r.archived]
    assert {r.properties["state"] for r in live} == {"reversed"} and len(live) == 2


def test_a_207_hubspot_blames_on_itself_is_retried(
        crm: HubSpotCrm, seeded: Seeded, double: HubSpotDouble, clock: FakeClock) -> None:
    ref = referral(seeded, clock())
    ref.crm_record_id = crm.create_referral(ref, decision()).record_id
    tasks = [notice("disqualified", 2), notice("closed_lost", 4)]
    double.inject(207, {"status": "COMPLETE", "results": [], "numErrors": 2, "errors": [
        {"status": "error", "category": "RATE_LIMITS", "message": "Try again later",
         "context": {"objectWriteTraceId": [t.key]}} for t in tasks]},
        method="POST", path="/tasks/batch/create$")
    with pytest.raises(CrmRetryableError, match="created 0 of 2"):
        crm.apply_changes(ref, tasks=tasks)
    crm.apply_changes(ref, tasks=tasks)
    assert sorted(tasks_by_key(double)) == sorted(str(t.key) for t in tasks)
