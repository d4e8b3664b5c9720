"""The Salesforce double answers like an org where the adapter relies on it: child
relationship subqueries and semi-joins, the Composite limits, and the conversion Flow
referral-sync deploys. Driven through simple-salesforce, as the adapter is."""

from __future__ import annotations

from typing import Any

import pytest
import responses
from simple_salesforce import Salesforce, SalesforceMalformedRequest

from referral_sync.salesforce import SalesforceCrm
from tests.salesforce.fake_org import INSTANCE, VERSION, FakeOrg

OPEN_PIPELINE = ("SELECT Id, Name, (SELECT Id, Name, Owner.Name FROM Opportunities "
                 "WHERE IsClosed = false ORDER BY CreatedDate DESC LIMIT {limit}) "
                 "FROM Account ORDER BY Name")


@pytest.fixture
def sf(org: FakeOrg) -> Salesforce:
    return Salesforce(instance_url=f"https://{INSTANCE}", session_id="00D!session",
                      version=VERSION)


@pytest.fixture
def accounts(org: FakeOrg) -> dict[str, str]:
    """Globex with two open opportunities and a lost one, Initech with none."""
    ae = org.add("User", Name="Ada Exec", Email="ada@vendor.example")
    globex = org.add("Account", Name="Globex", OwnerId=ae)
    initech = org.add("Account", Name="Initech", OwnerId=ae)
    ids = {"ae": ae, "globex": globex, "initech": initech}
    for name, created, closed in (("Renewal", "2026-03-01", False), ("Upsell", "2026-05-01",
                                                                     False),
                                  ("Lost deal", "2026-04-01", True)):
        ids[name] = org.add("Opportunity", Name=name, AccountId=globex, OwnerId=ae,
                            IsClosed=closed, CreatedDate=f"{created}T10:00:00.000+0000")
    return ids


def refused(call: Any) -> dict[str, Any]:
    """The first error of a call Salesforce answers with HTTP 400."""
    with pytest.raises(SalesforceMalformedRequest) as caught:
        call()
    return caught.value.content[0]  # type: ignore[no-any-return]


# -- child relationship subqueries ----------------------------------------------------------


def test_child_subquery_nests_filtered_ordered_children_or_null(
        sf: Salesforce, accounts: dict[str, str]) -> None:
    rows = sf.query(OPEN_PIPELINE.format(limit=5))["records"]

    globex, initech = rows
    pipeline = globex["Opportunities"]
    assert (pipeline["totalSize"], pipeline["done"]) == (2, True)
    assert [(r["Name"], r["Owner"]["Name"]) for r in pipeline["records"]] == [
        ("Upsell", "Ada Exec"), ("Renewal", "Ada Exec")]
    assert pipeline["records"][0]["attributes"] == {
        "type": "Opportunity",
        "url": f"/services/data/v{VERSION}/sobjects/Opportunity/{accounts['Upsell']}"}
    assert initech["Opportunities"] is None


def test_child_limit_applies_per_parent(sf: Salesforce, org: FakeOrg,
                                       accounts: dict[str, str]) -> None:
    org.add("Opportunity", Name="New logo", AccountId=accounts["initech"], IsClosed=False)

    rows = sf.query(OPEN_PIPELINE.format(limit=1))["records"]

    assert [[r["Name"] for r in row["Opportunities"]["records"]] for row in rows] == [
        ["Upsell"], ["New logo"]]


def test_contacts_and_account_team_subqueries_follow_parent_paths(
        sf: Salesforce, org: FakeOrg, accounts: dict[str, str]) -> None:
    org.add("Contact", LastName="Scorpio", Email="hank@globex.example",
            AccountId=accounts["globex"])
    org.add("AccountTeamMember", AccountId=accounts["globex"], UserId=accounts["ae"],
            TeamMemberRole="Account Executive")

    row, = sf.query(
        "SELECT Id, (SELECT Email FROM Contacts), (SELECT TeamMemberRole, User.Name, "
        "User.IsActive FROM AccountTeamMembers WHERE User.IsActive = true) FROM Account "
        "WHERE Name = 'Globex'")["records"]

    assert [c["Email"] for c in row["Contacts"]["records"]] == ["hank@globex.example"]
    member, = row["AccountTeamMembers"]["records"]
    assert (member["TeamMemberRole"], member["User"]["Name"], member["User"]["IsActive"]) == (
        "Account Executive", "Ada Exec", True)


@pytest.mark.parametrize("relationship", ["Opportunity", "Cases", "Leads"])
def test_unknown_child_relationship_is_invalid_type(
        sf: Salesforce, accounts: dict[str, str], relationship: str) -> None:
    problem = refused(lambda: sf.query(f"SELECT Id, (SELECT Id FROM {relationship}) "
                                       "FROM Account"))

    assert problem["errorCode"] == "INVALID_TYPE"
    assert problem["message"].startswith(
        f"Didn't understand relationship '{relationship}' in FROM part of query call.")


def test_account_team_relationship_is_unknown_without_account_teams(
        rsps: responses.RequestsMock) -> None:
    FakeOrg(rsps, account_teams=False)
    sf = Salesforce(instance_url=f"https://{INSTANCE}", session_id="x", version=VERSION)

    problem = refused(lambda: sf.query(
        "SELECT Id, (SELECT UserId FROM AccountTeamMembers) FROM Account"))

    assert problem["errorCode"] == "INVALID_TYPE"


def test_unknown_field_in_a_subquery_names_the_child_object(
        sf: Salesforce, accounts: dict[str, str]) -> None:
    problem = refused(lambda: sf.query(
        "SELECT Id, (SELECT Id, Probability__c FROM Opportunities) FROM Account"))

    assert problem == {"errorCode": "INVALID_FIELD", "fields": [], "message":
                       "No such column 'Probability__c' on entity 'Opportunity'."}


def test_semi_join_and_anti_join(sf: Salesforce, org: FakeOrg,
                                 accounts: dict[str, str]) -> None:
    org.add("Contact", LastName="Scorpio", Email="hank@globex.example",
            AccountId=accounts["globex"])
    inner = "(SELECT AccountId FROM Contact WHERE Email LIKE '%@globex.example')"

    joined = sf.query(f"SELECT Name FROM Account WHERE Id IN {inner}")["records"]
    anti = sf.query(f"SELECT Name FROM Account WHERE Id NOT IN {inner}")["records"]

    assert ([r["Name"] for r in joined], [r["Name"] for r in anti]) == (
        ["Globex"], ["Initech"])


def test_semi_join_must_select_one_field(sf: Salesforce, accounts: dict[str, str]) -> None:
    problem = refused(lambda: sf.query(
        "SELECT Id FROM Account WHERE Id IN (SELECT AccountId, Email FROM Contact)"))

    assert problem["errorCode"] == "MALFORMED_QUERY"


# -- Composite limits -----------------------------------------------------------------------


def _query(ref: str, soql: str = "SELECT Id FROM Account") -> dict[str, Any]:
    return {"method": "GET", "referenceId": ref,
            "url": f"/services/data/v{VERSION}/query/?q={soql.replace(' ', '+')}"}


def _create(ref: str) -> dict[str, Any]:
    return {"method": "POST", "referenceId": ref, "body": {"Name": ref},
            "url": f"/services/data/v{VERSION}/sobjects/Account"}


def _collection(ref: str, account_id: str) -> dict[str, Any]:
    return {"method": "PATCH", "referenceId": ref,
            "url": f"/services/data/v{VERSION}/composite/sobjects",
            "body": {"allOrNone": False, "records": [
                {"attributes": {"type": "Account"}, "Id": account_id, "Type": "Customer"}]}}


def composite(sf: Salesforce, subrequests: list[dict[str, Any]]) -> dict[str, Any]:
    """``POST composite``; the answer body."""
    return sf.restful("composite", method="POST",  # type: ignore[no-any-return]
                      json={"allOrNone": False, "compositeRequest": subrequests})


def test_twenty_five_subrequests_with_five_queries_run(
        sf: Salesforce, org: FakeOrg, accounts: dict[str, str]) -> None:
    subs = [_query(f"q{n}") for n in range(5)] + [_create(f"a{n}") for n in range(20)]

    answer = composite(sf, subs)

    assert [item["httpStatusCode"] for item in answer["compositeResponse"]] == \
        [200] * 5 + [201] * 20
    assert len(org.db["Account"]) == 22


def test_more_than_twenty_five_subrequests_fail_the_whole_call(
        sf: Salesforce, org: FakeOrg) -> None:
    problem = refused(lambda: composite(sf, [_create(f"a{n}") for n in range(26)]))

    assert problem["errorCode"] == "INVALID_INPUT"
    assert "26 subrequests" in problem["message"]
    assert org.db["Account"] == {}


@pytest.mark.parametrize("kinds", [(6, 0), (3, 3), (0, 6)])
def test_more_than_five_queries_or_collections_fail_the_whole_call(
        sf: Salesforce, org: FakeOrg, accounts: dict[str, str], kinds: tuple[int, int]) -> None:
    queries, collections = kinds
    subs = ([_query(f"q{n}") for n in range(queries)]
            + [_collection(f"c{n}", accounts["globex"]) for n in range(collections)]
            + [_create("extra")])

    problem = refused(lambda: composite(sf, subs))

    assert problem["errorCode"] == "INVALID_INPUT"
    assert "6 query or sObject Collections subrequests" in problem["message"]
    assert org.find("Account", Name="extra") == []
    assert org.db["Account"][accounts["globex"]].get("Type") is None


def test_query_all_counts_as_a_query(sf: Salesforce, accounts: dict[str, str]) -> None:
    subs = [_query(f"q{n}") for n in range(5)]
    subs.append({**_query("all"), "url": subs[0]["url"].replace("/query/", "/queryAll/")})

    assert refused(lambda: composite(sf, subs))["errorCode"] == "INVALID_INPUT"


# -- the conversion Flow --------------------------------------------------------------------


def _qualified_lead(org: FakeOrg) -> str:
    return org.add("Lead", LastName="Gibbons", Company="Initech", Referral_Id__c="ref-1",
                   Referral_Status__c="Qualified")


def test_converted_referral_opportunity_says_opportunity(
        org: FakeOrg, installed: SalesforceCrm) -> None:
    opportunity = org.convert_lead(_qualified_lead(org))["Opportunity"]

    record = org.db["Opportunity"][opportunity]
    assert (record["Referral_Id__c"], record["Referral_Status__c"]) == ("ref-1", "Opportunity")


def test_without_the_flow_conversion_copies_the_lead_status(
        org: FakeOrg, installed: SalesforceCrm) -> None:
    org.conversion_flow = False

    opportunity = org.convert_lead(_qualified_lead(org))["Opportunity"]

    assert org.db["Opportunity"][opportunity]["Referral_Status__c"] == "Qualified"


def test_flow_runs_on_rest_creates_of_referral_opportunities_only(
        sf: Salesforce, org: FakeOrg, installed: SalesforceCrm) -> None:
    created = sf.Opportunity.create({"Name": "Initech", "Referral_Id__c": "ref-2",
                                     "Referral_Status__c": "Qualified"})["id"]
    sf.Opportunity.upsert("Referral_Id__c/ref-3", {"Name": "Umbrella"})
    plain = sf.Opportunity.create({"Name": "Not a referral"})["id"]

    upserted, = org.find("Opportunity", Referral_Id__c="ref-3")
    assert [org.db["Opportunity"][created]["Referral_Status__c"],
            upserted["Referral_Status__c"]] == ["Opportunity", "Opportunity"]
    assert org.db["Opportunity"][plain].get("Referral_Status__c") is None

    sf.Opportunity.update(created, {"Referral_Status__c": "Closed Won"})

    # on create only: a later edit stands
    assert org.db["Opportunity"][created]["Referral_Status__c"] == "Closed Won"
