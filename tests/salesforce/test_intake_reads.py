"""Intake on the Salesforce double: every read in one Composite call (five queries at most),
owners known without look-ups, and the referral Lead created with its tasks in one call."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import responses

from referral_sync.crm import CrmTask, DuplicateKind, IntakeLookup
from referral_sync.models import OwnerKind
from referral_sync.salesforce import SalesforceCrm
from tests.salesforce.conftest import make_decision, make_referral
from tests.salesforce.fake_org import FakeOrg

SINCE = datetime(2025, 6, 1, tzinfo=UTC)
POLICY_OWNERS = frozenset({"queue:Referral Queue", "email:ada@vendor.example"})


def lookup(referee: str = "peter@initech.example", company: str = "initech",
           **extra: object) -> IntakeLookup:
    values: dict[str, object] = {
        "referrer_email": "hank@globex.example", "referee_email": referee,
        "domain": referee.rsplit("@", 1)[1], "company_key": company, "since": SINCE,
        "owner_refs": POLICY_OWNERS, "match_account": True}
    return IntakeLookup(**{**values, **extra})  # type: ignore[arg-type]


def composite_queries(rsps: responses.RequestsMock) -> list[int]:
    """Queries per Composite request sent so far."""
    return [sum("/query/?q=" in sub["url"] for sub in json.loads(call.request.body or "{}")
                ["compositeRequest"])
            for call in rsps.calls if (call.request.url or "").endswith("/composite")]


def test_intake_reads_cost_one_call_once_owner_names_are_known(
        org: FakeOrg, rsps: responses.RequestsMock, installed: SalesforceCrm,
        people: dict[str, str]) -> None:
    initech = org.add("Account", Name="Initech", Type="Prospect",
                      Website="https://initech.example", OwnerId=people["csm"])
    org.add("Opportunity", Name="Initech renewal", AccountId=initech, IsClosed=False,
            OwnerId=people["csm"], StageName="Prospecting")
    org.add("AccountTeamMember", AccountId=people["account"], UserId=people["csm"],
            TeamMemberRole="Customer Success Manager")
    installed.load_intake(lookup("someone@elsewhere.example", "elsewhere"))  # learns names
    before, sent = installed.api_calls(), len(composite_queries(rsps))

    found = installed.load_intake(lookup())

    assert installed.api_calls() - before == 1
    assert composite_queries(rsps)[sent:] == [5]  # Salesforce's limit per Composite call
    assert found.referrer is not None and found.referrer.account_team == {
        "Customer Success Manager": people["csm"]}
    assert [(d.kind, d.record_type) for d in found.duplicates] == [
        (DuplicateKind.OPEN_PIPELINE, "Opportunity")]
    assert found.account_match is not None and found.account_match.account_id == initech
    queue, ae = found.owners["queue:Referral Queue"], found.owners["email:ada@vendor.example"]
    assert queue is not None and (queue.id, queue.kind) == (people["queue"], OwnerKind.QUEUE)
    assert ae is not None and (ae.id, ae.name, ae.active) == (people["ae"], "Ada Exec", True)
    # the referrer's AE and account team come with the referrer, the match's owner with it
    assert {people["ae"], people["csm"]} <= set(found.owners)


def test_owner_names_ride_along_when_the_query_limit_leaves_room(
        rsps: responses.RequestsMock, installed: SalesforceCrm, people: dict[str, str]) -> None:
    before = installed.api_calls()

    # the default program's case: no account-team routing, the fallback queue named
    found = installed.load_intake(lookup(account_team=False,
                                         owner_refs=frozenset({"queue:Referral Queue"})))

    assert installed.api_calls() - before == 1
    assert composite_queries(rsps) == [5]  # four intake queries and the queue's name
    queue = found.owners["queue:Referral Queue"]
    assert queue is not None and (queue.id, queue.kind) == (people["queue"], OwnerKind.QUEUE)


def test_owner_names_resolve_once_and_activity_is_read_every_time(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str]) -> None:
    first = installed.api_calls()
    installed.load_intake(lookup())
    # with the account team read as well, names do not fit: they cost a call first
    assert installed.api_calls() - first == 2

    org.update("User", people["ae"], IsActive=False)
    before = installed.api_calls()
    found = installed.load_intake(lookup())

    assert installed.api_calls() - before == 1
    ae = found.owners["email:ada@vendor.example"]
    assert ae is not None and not ae.active


def test_a_referee_among_the_referrers_own_contacts_is_seen_without_a_colleague_query(
        installed: SalesforceCrm, people: dict[str, str]) -> None:
    found = installed.load_intake(lookup("smithers@globex.example", "globex"))

    assert found.referrer is not None
    assert sorted(found.referrer.account_contact_emails) == [
        "hank@globex.example", "smithers@globex.example"]
    assert {d.kind for d in found.duplicates} == {DuplicateKind.CUSTOMER}


def test_unknown_referrer_and_missing_owners(installed: SalesforceCrm) -> None:
    found = installed.load_intake(lookup(referrer_email="nobody@nowhere.example",
                                         owner_refs=frozenset({"queue:Nope"})))

    assert found.referrer is None
    assert found.owners == {}


def test_create_referral_writes_the_lead_and_its_tasks_in_one_call(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str]) -> None:
    referral = make_referral(people)
    tasks = [CrmTask(subject="Call Peter", owner_id=people["ae"], key="ref-0001:first-action",
                     due=datetime(2026, 6, 2, tzinfo=UTC)),
             CrmTask(subject="Referrer notified", owner_id=people["ae"], kind="activity",
                     key="notice:ref-0001:submitted")]
    before = installed.api_calls()

    record = installed.create_referral(referral, make_decision(people["ae"]), tasks=tasks)
    again = installed.create_referral(referral, make_decision(people["ae"]), tasks=tasks)

    assert installed.api_calls() - before == 2
    assert again.record_id == record.record_id and len(org.db["Lead"]) == 1
    made = sorted((t["Subject"], t["WhoId"]) for t in org.db["Task"].values())
    assert made == [("Call Peter", record.record_id),
                    ("Referrer notified", record.record_id)]


def test_notices_after_conversion_go_on_the_opportunity(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str]) -> None:
    referral = make_referral(people)
    record = installed.create_referral(referral, make_decision(people["ae"]))
    opportunity = org.convert_lead(record.record_id)["Opportunity"]
    referral.crm_record_id, referral.crm_opportunity_id = record.record_id, opportunity

    installed.apply_changes(referral, tasks=[CrmTask(
        subject="Referrer notified: won", owner_id=people["ae"], kind="activity",
        key="notice:ref-0001:closed_won", due=datetime(2026, 7, 1, tzinfo=UTC)
        + timedelta(days=1))])

    [task] = org.db["Task"].values()
    assert task["WhatId"] == opportunity and "WhoId" not in task
