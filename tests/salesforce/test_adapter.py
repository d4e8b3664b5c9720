"""The CRM port on the Salesforce double: what each method reads and writes, and its cost."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import responses

from referral_sync.crm import CrmTask, DuplicateKind
from referral_sync.errors import CrmPermanentError
from referral_sync.models import CrmObject, Milestone, OwnerKind, ReferralStatus, RewardState
from referral_sync.program.schema import CrmMapping
from referral_sync.salesforce import ASSIGNMENT_RULE, SalesforceCrm
from tests.salesforce.conftest import make_crm, make_decision, make_referral, make_reward
from tests.salesforce.fake_org import FakeOrg, query_text

SINCE = datetime(2025, 6, 1, tzinfo=UTC)


def _queries(rsps: responses.RequestsMock) -> list[str]:
    """SOQL sent, whether directly or inside Composite requests."""
    import json

    out = []
    for call in rsps.calls:
        url = call.request.url or ""
        if "/query/?q=" in url:
            out.append(query_text(url.split("/v62.0/", 1)[1]))
        elif url.endswith("/composite") and call.request.body:
            for sub in json.loads(call.request.body)["compositeRequest"]:
                if "/query/?q=" in sub["url"]:
                    out.append(query_text(sub["url"].split("/v62.0/", 1)[1]))
    return out


def test_load_referrer_reads_contact_account_team_and_colleagues_in_one_call(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str]) -> None:
    org.add("AccountTeamMember", AccountId=people["account"], UserId=people["csm"],
            TeamMemberRole="Customer Success Manager")
    before = installed.api_calls()

    context = installed.load_referrer("hank@globex.example")

    assert installed.api_calls() - before == 1
    assert context is not None
    assert (context.contact_id, context.account_id, context.owner_id) == (
        people["referrer"], people["account"], people["ae"])
    assert context.is_paying_customer and context.account_type == "Customer - Direct"
    assert context.customer_since == datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
    assert context.account_domain == "globex.example"
    assert context.account_status is None and context.usage_active is None
    assert context.account_team == {"Customer Success Manager": people["csm"]}
    assert sorted(context.account_contact_emails) == ["hank@globex.example",
                                                      "smithers@globex.example"]


def test_load_referrer_reads_mapped_status_usage_and_tenure_fields(
        org: FakeOrg, installed: SalesforceCrm, sleeps: list[float],
        people: dict[str, str]) -> None:
    crm = make_crm(sleeps, CrmMapping(customer_since_field="CreatedDate",
                                      usage_field="Name", extra_fields=["Website"]))
    org.update("Account", people["account"], Referral_Account_Status__c="collections")

    context = crm.load_referrer("HANK@globex.example")

    assert context is not None and context.account_status == "collections"
    assert context.fields == {"Website": "https://www.globex.example/"}


def test_unknown_referrer_is_none(installed: SalesforceCrm, people: dict[str, str]) -> None:
    assert installed.load_referrer("nobody@globex.example") is None


def test_orgs_without_account_teams_are_detected_once(
        rsps: responses.RequestsMock, sleeps: list[float],
        installed_components: dict[tuple[str, str], Any]) -> None:
    org = FakeOrg(rsps, account_teams=False)
    org.metadata.components.update(installed_components)
    crm = make_crm(sleeps)
    ae = org.add("User", Name="Ada", IsActive=True)
    account = org.add("Account", Name="Globex", Type="Customer - Direct", OwnerId=ae)
    org.add("Contact", LastName="Scorpio", Email="hank@globex.example", AccountId=account)

    first = crm.load_referrer("hank@globex.example")
    second = crm.load_referrer("hank@globex.example")

    assert first is not None and first.account_team == {}
    assert second is not None and second.owner_id == ae
    assert sum("AccountTeamMember" in q for q in _queries(rsps)) == 1


def test_find_duplicates_classifies_matches_and_escapes_input(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str],
        rsps: responses.RequestsMock) -> None:
    org.add("Lead", LastName="Lumbergh", Company="Initech", Email="bill@initech.example",
            OwnerId=people["ae"], CreatedDate="2026-05-01T00:00:00.000+0000")
    org.add("Lead", LastName="Old", Company="Initech", Email="old@initech.example",
            CreatedDate="2024-01-01T00:00:00.000+0000")
    org.add("Lead", LastName="Waddams", Company="Other", Email="milton@initech.example",
            Referral_Id__c="ref-0000", CreatedDate="2026-05-02T00:00:00.000+0000")
    initech = org.add("Account", Name="Initech LLC", Website="initech.example", Type="Prospect")
    org.add("Opportunity", Name="Initech deal", AccountId=initech, StageName="Prospecting")
    before = installed.api_calls()

    found = installed.find_duplicates("peter@initech.example", "initech.example", "initech",
                                      SINCE)

    assert installed.api_calls() - before == 1
    kinds = sorted((c.kind, c.record_type, c.matched_on) for c in found)
    assert kinds == sorted([
        (DuplicateKind.OPEN_PIPELINE, "Lead", "domain"),
        (DuplicateKind.EARLIER_REFERRAL, "Lead", "domain"),
        (DuplicateKind.OPEN_PIPELINE, "Opportunity", "domain"),
    ])
    assert installed.find_duplicates("o'brien\\x@globex.example", None, "50%_off", SINCE) == []
    assert any("Email = 'o\\'brien\\\\x@globex.example'" in q for q in _queries(rsps))
    assert any("LIKE '%50\\%\\_off%'" in q for q in _queries(rsps))


def test_customer_contacts_and_accounts_are_customer_duplicates(
        installed: SalesforceCrm, people: dict[str, str]) -> None:
    found = installed.find_duplicates("new@globex.example", "globex.example", "globex", SINCE)

    assert {(c.kind, c.record_type) for c in found} == {
        (DuplicateKind.CUSTOMER, "Contact"), (DuplicateKind.CUSTOMER, "Account")}
    assert {c.matched_on for c in found} == {"domain"}


def test_account_by_domain_after_duplicate_check_costs_no_call(
        installed: SalesforceCrm, people: dict[str, str]) -> None:
    installed.find_duplicates("someone@globex.example", "globex.example", "globex", SINCE)
    before = installed.api_calls()

    account = installed.find_account_by_domain("globex.example")

    assert installed.api_calls() == before
    assert account is not None and account.account_id == people["account"]
    assert account.owner_id == people["ae"] and account.is_paying_customer
    assert installed.find_account_by_domain("notglobex.example") is None


def test_owners_resolve_by_id_email_and_queue_and_are_memoised(
        installed: SalesforceCrm, people: dict[str, str]) -> None:
    queue = installed.get_owner("queue:Referral Queue")
    assert queue is not None and (queue.id, queue.kind) == (people["queue"], OwnerKind.QUEUE)
    user = installed.get_owner("email:ada@vendor.example")
    assert user is not None and (user.id, user.kind, user.active) == (
        people["ae"], OwnerKind.USER, True)
    before = installed.api_calls()
    assert installed.get_owner("queue:Referral Queue") == queue
    assert installed.api_calls() == before
    assert installed.get_owner("not-an-id") is None
    assert installed.get_owner("queue:Nope") is None


def test_create_referral_upserts_a_routed_lead_without_assignment_rules(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str]) -> None:
    org.assignment_rule_owner = people["csm"]  # an active rule that must not fire
    referral = make_referral(people)
    before = installed.api_calls()

    ref = installed.create_referral(referral, make_decision(people["ae"]))

    assert installed.api_calls() - before == 1
    lead = org.db["Lead"][ref.record_id]
    assert lead["OwnerId"] == people["ae"]
    assert org.auto_assign == ["FALSE"]
    assert (lead["LeadSource"], lead["Referral_Source__c"], lead["Referral_Id__c"]) == (
        "Referral", True, "ref-0001")
    assert (lead["Referrer_Contact__c"], lead["Referrer_Account__c"]) == (
        people["referrer"], people["account"])
    assert (lead["Referral_Status__c"], lead["Referral_First_Action__c"]) == ("Submitted", "Call")
    assert lead["Referral_Policy_Version__c"] == "2026.1 (abcd1234)"
    assert lead["Referred_At__c"] == "2026-06-01T08:30:00+00:00"
    assert ref.url == f"https://acme.my.salesforce.com/lightning/r/Lead/{ref.record_id}/view"
    # a retry after a lost answer updates the same Lead
    assert installed.create_referral(referral, make_decision(people["ae"])) == ref
    assert len(org.db["Lead"]) == 1


def test_create_referral_can_delegate_to_the_assignment_rule(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str]) -> None:
    org.assignment_rule_owner = people["csm"]

    installed.create_referral(make_referral(people), make_decision(ASSIGNMENT_RULE))
    ref = installed.create_referral(make_referral(people, "ref-0002"),
                                    make_decision("assignment_rule:01Q5g000000AbCdEAK"))

    assert org.auto_assign == ["TRUE", "01Q5g000000AbCdEAK"]
    assert org.db["Lead"][ref.record_id]["OwnerId"] == people["csm"]


def test_create_referral_resolves_a_queue_owner_and_uses_the_configured_lead_source(
        org: FakeOrg, installed: SalesforceCrm, sleeps: list[float],
        people: dict[str, str]) -> None:
    crm = make_crm(sleeps, CrmMapping(lead_source_value="Customer Referral"))

    ref = crm.create_referral(make_referral(people), make_decision("queue:Referral Queue"))

    lead = org.db["Lead"][ref.record_id]
    assert (lead["OwnerId"], lead["LeadSource"]) == (people["queue"], "Customer Referral")
    with pytest.raises(CrmPermanentError, match="owner queue:"):
        crm.create_referral(make_referral(people, "ref-9"), make_decision("queue:Missing"))


def test_read_referral_follows_the_lead_through_conversion_and_close(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str]) -> None:
    referral = make_referral(people)
    lead_id = installed.create_referral(referral, make_decision(people["ae"])).record_id
    referral.crm_record_id = lead_id

    assert installed.read_referral(referral).status is ReferralStatus.SUBMITTED
    assert not installed.read_referral(referral).touched
    org.update("Lead", lead_id, Status="Working - Contacted", Referral_Status__c="Qualified")
    snap = installed.read_referral(referral)
    assert (snap.status, snap.touched, snap.owner_id) == (ReferralStatus.QUALIFIED, True,
                                                          people["ae"])
    opp = org.convert_lead(lead_id)["Opportunity"]
    assert installed.read_referral(referral).status is ReferralStatus.OPPORTUNITY
    org.update("Opportunity", opp, StageName="Closed Won", IsWon=True, IsClosed=True,
               Amount=48000.0)
    before = installed.api_calls()
    snap = installed.read_referral(referral)
    assert installed.api_calls() - before == 1
    assert (snap.status, snap.opportunity_id, snap.amount) == (
        ReferralStatus.CLOSED_WON, opp, Decimal("48000.0"))


def test_read_referral_of_a_disqualified_or_missing_lead(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str]) -> None:
    referral = make_referral(people)
    lead_id = installed.create_referral(referral, make_decision(people["ae"])).record_id
    org.update("Lead", lead_id, Status="Closed - Not Converted",
               Referral_Disqualified_Reason__c="No budget this year")

    snap = installed.read_referral(referral)  # found by referral id (no record id yet)

    assert (snap.status, snap.disqualified_reason) == (ReferralStatus.DISQUALIFIED,
                                                       "No budget this year")
    with pytest.raises(CrmPermanentError) as missing:
        installed.read_referral(make_referral(people, "ref-unknown"))
    assert missing.value.code == "NOT_FOUND"


def test_update_referral_writes_the_lead_then_the_opportunity_after_conversion(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str]) -> None:
    referral = make_referral(people)
    lead_id = installed.create_referral(referral, make_decision(people["ae"])).record_id
    referral.crm_record_id = lead_id
    referral.owner_id = people["csm"]
    referral.advance(ReferralStatus.QUALIFIED, datetime(2026, 6, 2, tzinfo=UTC))

    installed.update_referral(referral, fields={"referral_status": ReferralStatus.QUALIFIED,
                                                "reward_status": "qualified: earned"})

    lead = org.db["Lead"][lead_id]
    assert (lead["OwnerId"], lead["Referral_Status__c"], lead["Referral_Reward_Status__c"]) == (
        people["csm"], "Qualified", "qualified: earned")
    assert lead["Referral_Qualified_At__c"] == "2026-06-02T00:00:00+00:00"
    assert org.auto_assign[-1] == "FALSE"
    referral.crm_opportunity_id = org.convert_lead(lead_id)["Opportunity"]
    referral.advance(ReferralStatus.OPPORTUNITY, datetime(2026, 6, 3, tzinfo=UTC))
    installed.update_referral(referral)
    assert org.db["Opportunity"][referral.crm_opportunity_id]["Referral_Status__c"] == \
        "Opportunity"


def test_rewards_upsert_once_per_milestone_and_only_when_the_crm_backs_them(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str]) -> None:
    referral = make_referral(people)
    lead_id = installed.create_referral(referral, make_decision(people["ae"])).record_id
    qualified = make_reward(referral.id, Milestone.QUALIFIED)

    with pytest.raises(CrmPermanentError) as early:
        installed.upsert_reward(qualified)
    assert early.value.code == "MILESTONE_NOT_REACHED"
    assert org.db["Referral_Reward__c"] == {}

    org.update("Lead", lead_id, Referral_Status__c="Qualified")
    before = installed.api_calls()
    first = installed.upsert_reward(qualified)
    assert installed.api_calls() - before == 1
    assert installed.upsert_reward(qualified) == first
    reward = org.db["Referral_Reward__c"][first]
    assert (reward["Reward_Key__c"], reward["Lead__c"], reward["Amount__c"]) == (
        "ref-0001:qualified", lead_id, 200.0)
    assert (reward["Status__c"], reward["Milestone__c"], reward["Tier__c"]) == (
        "Earned", "qualified", "Bronze")

    opp = org.convert_lead(lead_id)["Opportunity"]
    won = make_reward(referral.id, Milestone.CLOSED_WON, 1000)
    with pytest.raises(CrmPermanentError):
        installed.upsert_reward(won)
    org.update("Opportunity", opp, IsWon=True, IsClosed=True, StageName="Closed Won")
    won_id = installed.upsert_reward(won)
    assert org.db["Referral_Reward__c"][won_id]["Opportunity__c"] == opp
    assert len(org.db["Referral_Reward__c"]) == 2
    # state changes after earning are written without the milestone check
    org.update("Opportunity", opp, IsWon=False, IsClosed=False, StageName="Negotiation")
    reversed_id = installed.upsert_reward(won.model_copy(update={"state": RewardState.REVERSED}))
    assert reversed_id == won_id
    assert org.db["Referral_Reward__c"][won_id]["Status__c"] == "Reversed"


def test_tasks_are_idempotent_by_key(org: FakeOrg, installed: SalesforceCrm,
                                     people: dict[str, str]) -> None:
    lead_id = installed.create_referral(make_referral(people),
                                        make_decision(people["ae"])).record_id
    task = CrmTask(subject="Call Peter Gibbons (referred by Hank Scorpio)",
                   owner_id=people["ae"], what_id=lead_id, key="ref-0001:first_action",
                   due=datetime(2026, 6, 2, 9, 0, tzinfo=UTC))

    first = installed.create_task(task)
    again = installed.create_task(task)
    loose = installed.create_task(CrmTask(subject="Tell Hank", owner_id="email:ada@vendor.example",
                                          what_id=people["account"]))

    assert first == again and loose != first
    assert len(org.db["Task"]) == 2
    stored = org.db["Task"][first]
    assert (stored["WhoId"], stored["ActivityDate"], stored["OwnerId"]) == (
        lead_id, "2026-06-02", people["ae"])
    assert org.db["Task"][loose]["WhatId"] == people["account"]


def test_list_changes_streams_both_objects_oldest_first_across_pages(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str]) -> None:
    org.page_size = 2
    ids = [installed.create_referral(make_referral(people, f"ref-{n}"),
                                     make_decision(people["ae"])).record_id for n in range(3)]
    org.update("Lead", ids[0], Referral_Status__c="Qualified")
    opp = org.convert_lead(ids[1])["Opportunity"]
    org.update("Opportunity", opp, IsWon=True, IsClosed=True)
    org.add("Lead", LastName="Not a referral", Company="X")
    since = datetime(2026, 6, 1, 9, 0, 5, tzinfo=UTC)
    before = installed.api_calls()

    events = list(installed.list_changes(since))

    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    by_record: dict[str, Any] = {e.record_id: e for e in events}
    assert set(by_record) == set(ids) | {opp}
    assert by_record[ids[0]].status is ReferralStatus.QUALIFIED
    assert by_record[opp].object_type is CrmObject.OPPORTUNITY
    assert by_record[opp].status is ReferralStatus.CLOSED_WON
    assert by_record[opp].referral_id == "ref-1"
    assert installed.api_calls() - before == 3  # Lead: 2 pages, Opportunity: 1 page
    # the same record at the same stamp gives the same event id, so overlaps dedupe
    assert [e.event_id for e in installed.list_changes(since)] == [e.event_id for e in events]


def test_apply_changes_writes_status_rewards_and_notices_in_one_call(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str]) -> None:
    referral = make_referral(people)
    referral.crm_record_id = installed.create_referral(
        referral, make_decision(people["ae"])).record_id
    org.update("Lead", referral.crm_record_id, Referral_Status__c="Qualified")
    referral.advance(ReferralStatus.QUALIFIED, datetime(2026, 6, 2, tzinfo=UTC))
    reward = make_reward(referral.id, Milestone.QUALIFIED)
    notice = CrmTask(subject="Tell Hank", owner_id=people["ae"], what_id=people["referrer"],
                     key="ref-0001:notice:qualified")
    before = installed.api_calls()

    applied = installed.apply_changes(referral, rewards=[reward], tasks=[notice],
                                      fields={"reward_status": "qualified: earned"})

    assert installed.api_calls() - before == 1
    assert set(applied.rewards) == {"ref-0001:qualified"}
    assert org.db["Referral_Reward__c"][applied.rewards[reward.key]]["Amount__c"] == 200.0
    assert org.db["Task"][applied.tasks[notice.key]]["WhoId"] == people["referrer"]
    lead = org.db["Lead"][referral.crm_record_id]
    assert (lead["Referral_Status__c"], lead["Referral_Reward_Status__c"]) == (
        "Qualified", "qualified: earned")
    assert installed.apply_changes(referral, rewards=[reward], tasks=[notice]) == applied
    assert (len(org.db["Referral_Reward__c"]), len(org.db["Task"])) == (1, 1)


def test_apply_changes_refuses_a_reward_the_crm_does_not_back_and_bad_batches(
        org: FakeOrg, installed: SalesforceCrm, people: dict[str, str]) -> None:
    referral = make_referral(people)
    referral.crm_record_id = installed.create_referral(
        referral, make_decision(people["ae"])).record_id

    with pytest.raises(CrmPermanentError) as caught:
        installed.apply_changes(referral, rewards=[make_reward(referral.id, Milestone.CLOSED_WON)])
    assert caught.value.code == "MILESTONE_NOT_REACHED"
    assert org.db["Referral_Reward__c"] == {}
    with pytest.raises(ValueError, match="keyed"):
        installed.apply_changes(referral, tasks=[CrmTask(subject="x", owner_id=people["ae"],
                                                         what_id=people["referrer"])])
    many = [CrmTask(subject="x", owner_id=people["ae"], what_id=people["referrer"], key=f"k{n}")
            for n in range(13)]
    with pytest.raises(ValueError, match="do not fit"):
        installed.apply_changes(referral, tasks=many)
