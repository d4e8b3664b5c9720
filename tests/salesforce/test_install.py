"""``ensure_schema`` / ``schema_drift`` through the Metadata API double."""

from __future__ import annotations

import pytest

from referral_sync.errors import CrmPermanentError
from referral_sync.salesforce import schema as s
from referral_sync.salesforce.adapter import SalesforceCrm
from tests.salesforce.fake_metadata import MD
from tests.salesforce.fake_org import FakeOrg

ORG_MAPPING = (
    "<fullName>LeadConvertSettings</fullName><allowOwnerChange>false</allowOwnerChange>"
    "<objectMapping><inputObject>Lead</inputObject><mappingFields><inputField>Score__c"
    "</inputField><outputField>Score__c</outputField></mappingFields><outputObject>Contact"
    "</outputObject></objectMapping>"
)
FIELD_COUNT = sum(len(specs) for specs in s.FIELDS.values())


def test_first_install_creates_everything_in_dependency_order(org: FakeOrg,
                                                              crm: SalesforceCrm) -> None:
    changes = crm.ensure_schema(dry_run=False)

    assert len(changes) == 1 + FIELD_COUNT + 2
    assert {c.action for c in changes} == {"create"}
    kinds = [kind for kind, _ in org.metadata.upserts]
    assert kinds.index("CustomObject") < kinds.index("CustomField") < kinds.index(
        "PermissionSet") < kinds.index("LeadConvertSettings")
    lead_id = org.metadata.get("CustomField", "Lead.Referral_Id__c")
    assert lead_id is not None
    assert (lead_id["externalId"], lead_id["unique"], lead_id["length"]) == ("true", "true", "64")
    assert org.metadata.get("CustomObject", s.REWARD_OBJECT)["sharingModel"] == "ReadWrite"


def test_second_install_changes_nothing_and_sends_only_reads(org: FakeOrg,
                                                             crm: SalesforceCrm) -> None:
    crm.ensure_schema(dry_run=False)
    written = len(org.metadata.upserts)
    reads_before = org.metadata.reads

    assert crm.ensure_schema(dry_run=False) == []
    assert len(org.metadata.upserts) == written
    # 1 object + ceil(fields / 10) field reads + permission set + conversion settings
    assert org.metadata.reads - reads_before == 1 + -(-FIELD_COUNT // 10) + 2
    assert crm.schema_drift() == []


def test_dry_run_prints_the_plan_and_writes_nothing(org: FakeOrg, crm: SalesforceCrm) -> None:
    plan = crm.ensure_schema(dry_run=True)

    assert org.metadata.upserts == []
    assert ("Lead", "Referral_Status__c", "create") in {(c.object_name, c.item, c.action)
                                                         for c in plan}


def test_drift_names_the_field_and_the_difference_and_install_repairs_it(
        org: FakeOrg, crm: SalesforceCrm) -> None:
    crm.ensure_schema(dry_run=False)
    element = org.metadata.element("CustomField", "Opportunity.Referral_Routing_Reason__c")
    element.find(f"{{{MD}}}length").text = "100"  # an admin shortened it

    drift = crm.schema_drift()

    assert [(c.object_name, c.item, c.action) for c in drift] == [
        ("Opportunity", "Referral_Routing_Reason__c", "update")]
    assert "length" in drift[0].detail and "255" in drift[0].detail
    assert crm.ensure_schema(dry_run=False) == drift
    assert crm.schema_drift() == []


def test_conversion_mapping_is_merged_into_the_orgs_own(org: FakeOrg, crm: SalesforceCrm) -> None:
    org.metadata.seed("LeadConvertSettings", ORG_MAPPING)

    crm.ensure_schema(dry_run=False)

    element = org.metadata.element("LeadConvertSettings", "LeadConvertSettings")
    pairs = {(m.findtext(f"{{{MD}}}outputObject"), f.findtext(f"{{{MD}}}inputField"))
             for m in element.findall(f"{{{MD}}}objectMapping")
             for f in m.findall(f"{{{MD}}}mappingFields")}
    assert ("Contact", "Score__c") in pairs  # the org's mapping survives
    assert ("Opportunity", "Referral_Id__c") in pairs
    assert ("Opportunity", "Referral_Status__c") in pairs
    assert ("Account", "Referrer_Contact__c") in pairs
    assert element.findtext(f"{{{MD}}}allowOwnerChange") == "false"  # their choice kept
    assert crm.schema_drift() == []


def test_permission_set_grants_every_installed_field(org: FakeOrg, crm: SalesforceCrm) -> None:
    crm.ensure_schema(dry_run=False)

    element = org.metadata.element("PermissionSet", s.PERMISSION_SET)
    granted = {p.findtext(f"{{{MD}}}field") for p in element.findall(f"{{{MD}}}fieldPermissions")}
    assert granted == {f"{obj}.{spec.name}" for obj, spec in s.custom_fields()}
    assert element.findtext(f"{{{MD}}}objectPermissions/{{{MD}}}object") == s.REWARD_OBJECT


def test_refused_component_raises_a_permanent_error_naming_it(org: FakeOrg,
                                                              crm: SalesforceCrm) -> None:
    org.metadata.refuse["Lead.Referral_Status__c"] = ("FIELD_INTEGRITY_EXCEPTION",
                                                      "Picklist value too long")

    with pytest.raises(CrmPermanentError) as caught:
        crm.ensure_schema(dry_run=False)

    assert caught.value.code == "METADATA_ERROR"
    assert "Lead.Referral_Status__c" in str(caught.value)


def test_metadata_calls_are_counted_and_carry_a_timeout(org: FakeOrg, crm: SalesforceCrm,
                                                        rsps: object) -> None:
    before = crm.api_calls()
    crm.schema_drift()

    assert crm.api_calls() - before == org.metadata.reads
    assert all(call.request.req_kwargs["timeout"] == 30.0  # type: ignore[attr-defined]
               for call in rsps.calls)  # type: ignore[attr-defined]
