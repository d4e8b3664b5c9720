"""Installing the referral schema: idempotent, a dry-run plan that writes nothing, drift for
``doctor``, conflicts left to an admin, racing installers, and the custom object only where
the portal allows it (with the deal-property fallback elsewhere)."""

from __future__ import annotations

import logging

import pytest

from referral_sync.errors import CrmPermanentError
from referral_sync.hubspot import spec
from referral_sync.hubspot.adapter import HubSpotCrm
from tests.conftest import FakeClock
from tests.hubspot.conftest import FakeTime, make_crm
from tests.hubspot.double import HubSpotDouble

WRITES = "(POST|PATCH|PUT|DELETE)"


def writes(double: HubSpotDouble) -> int:
    return sum(1 for r in double.requests if r.method in ("POST", "PATCH", "PUT", "DELETE"))


def test_first_run_installs_everything_and_second_run_changes_nothing(
        crm: HubSpotCrm, double: HubSpotDouble) -> None:
    first = crm.ensure_schema(dry_run=False)
    items = {(c.object_name, c.item, c.action) for c in first}
    for obj in spec.OBJECT_TYPES:
        assert (obj, "group referral", "create") in items
        for prop in spec.PROPERTIES[obj]:
            assert (obj, f"property {prop.name}", "create") in items
    assert ("contacts->contacts", "label Referrer", "create") in items
    assert ("referral_reward", "custom object", "create") in items
    portal = double.portal
    assert portal.definitions["deals"]["referral_id"]["hasUniqueValue"] is True
    assert portal.definitions["contacts"]["referral_status"]["groupName"] == "referral"
    [reward_type] = portal.schemas
    assert portal.definitions[reward_type]["reward_key"]["hasUniqueValue"] is True

    before = len(double.requests)
    assert crm.ensure_schema(dry_run=False) == []
    second = double.requests[before:]
    assert all(r.method == "GET" for r in second)
    assert len(second) == 10


def test_dry_run_plans_the_same_changes_and_writes_nothing(crm: HubSpotCrm,
                                                           double: HubSpotDouble,
                                                           clock: FakeClock,
                                                           fake_time: FakeTime) -> None:
    plan = crm.ensure_schema(dry_run=True)
    assert writes(double) == 0
    applied = make_crm(double, clock, fake_time).ensure_schema(dry_run=False)
    assert [(c.object_name, c.item, c.action) for c in plan] == \
        [(c.object_name, c.item, c.action) for c in applied]


def test_drift_reports_what_an_admin_changed_and_install_repairs_it(
        crm: HubSpotCrm, double: HubSpotDouble) -> None:
    crm.ensure_schema(dry_run=False)
    status = double.portal.definitions["contacts"]["referral_status"]
    status["options"] = [o for o in status["options"] if o["value"] != "nurture"]
    status["options"].append({"label": "On hold", "value": "on_hold", "displayOrder": 99,
                              "hidden": False})
    del double.portal.definitions["deals"]["referral_program"]
    drift = crm.schema_drift()
    assert {(c.object_name, c.item, c.action) for c in drift} == {
        ("contacts", "property referral_status", "update"),
        ("deals", "property referral_program", "create")}
    assert "missing options nurture" in next(c.detail for c in drift if c.action == "update")
    crm.ensure_schema(dry_run=False)
    assert crm.schema_drift() == []
    values = [o["value"] for o in double.portal.definitions["contacts"]["referral_status"][
        "options"]]
    assert "nurture" in values and "on_hold" in values


def test_a_property_of_another_type_is_a_conflict_left_alone(crm: HubSpotCrm,
                                                             double: HubSpotDouble) -> None:
    from tests.hubspot.double.state import definition

    double.portal.definitions["contacts"]["referral_id"] = definition("referral_id", "number",
                                                                      "number")
    changes = crm.ensure_schema(dry_run=False)
    [conflict] = [c for c in changes if c.action == "conflict"]
    assert conflict.item == "property referral_id" and "type is number" in conflict.detail
    assert double.portal.definitions["contacts"]["referral_id"]["type"] == "number"
    assert "referral_status" in double.portal.definitions["contacts"]


def test_racing_installers_already_exists_answers_count_as_success(
        crm: HubSpotCrm, double: HubSpotDouble) -> None:
    # Another installer creates the group between our read and our create.
    double.inject(200, {"results": []}, method="GET", path="/properties/contacts/groups")
    double.portal.groups["contacts"]["referral"] = {"name": "referral", "label": "Referral",
                                                    "displayOrder": -1, "archived": False}
    double.inject(409, {"status": "error", "category": "OBJECT_ALREADY_EXISTS",
                        "message": "Property group referral already exists.",
                        "correlationId": "c"}, method="POST", path="/properties/contacts/groups")
    double.inject(207, {"status": "COMPLETE", "results": [], "numErrors": 1, "errors": [
        {"status": "error", "category": "OBJECT_ALREADY_EXISTS",
         "message": "Property named 'referral_account_status' already exists."}]},
        method="POST", path="/properties/companies/batch/create")
    crm.ensure_schema(dry_run=False)
    assert double.count("POST", "/properties/deals/batch/create") == 1


def test_other_partial_failures_are_reported(crm: HubSpotCrm, double: HubSpotDouble) -> None:
    double.inject(207, {"status": "COMPLETE", "results": [], "numErrors": 1, "errors": [
        {"status": "error", "category": "VALIDATION_ERROR",
         "message": "Too many unique value properties"}]},
        method="POST", path="/properties/deals/batch/create")
    with pytest.raises(CrmPermanentError, match="partly failed.*Too many unique"):
        crm.ensure_schema(dry_run=False)


def test_non_enterprise_portals_fall_back_to_deal_properties(
        double: HubSpotDouble, clock: FakeClock, fake_time: FakeTime,
        caplog: pytest.LogCaptureFixture) -> None:
    double.reset(clock=clock, enterprise=False)
    crm = make_crm(double, clock, fake_time)
    with caplog.at_level(logging.WARNING):
        first = crm.ensure_schema(dry_run=False)
    assert not [c for c in first if c.object_name == "referral_reward"]
    assert "custom objects not available" in caplog.text
    assert double.portal.schemas == {}
    assert "referral_reward_closed_won_amount" in double.portal.definitions["deals"]
    assert crm.schema.reward_schema() is None
    assert crm.ensure_schema(dry_run=False) == []


def test_custom_object_mode_makes_a_missing_object_an_error(double: HubSpotDouble,
                                                            clock: FakeClock,
                                                            fake_time: FakeTime) -> None:
    double.reset(clock=clock, enterprise=False)
    crm = make_crm(double, clock, fake_time, reward_mode="custom_object")
    with pytest.raises(CrmPermanentError) as caught:
        crm.ensure_schema(dry_run=False)
    assert caught.value.http_status == 403 and caught.value.code == "MISSING_SCOPES"


def test_deal_properties_mode_never_touches_custom_objects(double: HubSpotDouble,
                                                           clock: FakeClock,
                                                           fake_time: FakeTime) -> None:
    crm = make_crm(double, clock, fake_time, reward_mode="deal_properties")
    crm.ensure_schema(dry_run=False)
    assert double.count(path="/crm-object-schemas") == 0
    assert crm.schema.reward_schema() is None


def test_a_new_reward_property_is_added_to_an_existing_object(crm: HubSpotCrm,
                                                              double: HubSpotDouble) -> None:
    crm.ensure_schema(dry_run=False)
    [type_id] = double.portal.schemas
    del double.portal.definitions[type_id]["tier"]
    [change] = crm.ensure_schema(dry_run=False)
    assert (change.object_name, change.item, change.action) == ("referral_reward",
                                                                "property tier", "create")
    assert double.portal.definitions[type_id]["tier"]["groupName"] == \
        "referral_reward_information"


def test_label_ids_are_discovered_not_hard_coded(crm: HubSpotCrm, double: HubSpotDouble) -> None:
    assert crm.schema.referrer_label_id() is None
    crm.ensure_schema(dry_run=False)
    label = crm.schema.referrer_label_id()
    types = double.portal.assoc_types[("contacts", "contacts")]
    assert label is not None and types[label]["label"] == "Referrer"
    assert types[types[label]["inverse"]]["label"] == "Referred"
