"""The committed ``deploy/salesforce`` project equals what the Python definitions generate,
and every metadata file validates against the Metadata API schema bundled with
simple-salesforce (elements in schema order)."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path, PurePosixPath

import pytest

etree = pytest.importorskip("lxml.etree")

from referral_sync.models import ReferralStatus  # noqa: E402
from referral_sync.salesforce import automation, sfdx  # noqa: E402
from referral_sync.salesforce import schema as s  # noqa: E402
from referral_sync.salesforce.status import StatusMapping  # noqa: E402
from referral_sync.salesforce.xsd import metadata_schema, render  # noqa: E402

PROJECT = Path(__file__).resolve().parents[2] / "deploy" / "salesforce"
XSD = "http://www.w3.org/2001/XMLSchema"
MD = "http://soap.sforce.com/2006/04/metadata"
ROOT_TYPES = ("CustomField", "CustomObject", "PermissionSet", "LeadConvertSettings",
              "Workflow", "Flow", "ListView")


@pytest.fixture(scope="module")
def generated() -> dict[PurePosixPath, bytes]:
    return sfdx.project_files()


@pytest.fixture(scope="module")
def metadata_xsd() -> object:
    """The WSDL's schema as a standalone XSD with global elements for file roots."""
    wsdl = resources.files("simple_salesforce").joinpath("metadata.wsdl").read_bytes()
    source = etree.fromstring(wsdl).find(f".//{{{XSD}}}schema")
    # The WSDL declares ``tns`` on its root; a copied schema element needs its own.
    schema = etree.Element(f"{{{XSD}}}schema", nsmap={"xsd": XSD, "tns": MD},
                           targetNamespace=MD, elementFormDefault="qualified")
    for child in source:
        schema.append(copy.deepcopy(child))
    for name in ROOT_TYPES:
        etree.SubElement(schema, f"{{{XSD}}}element", name=name, type=f"tns:{name}")
    return etree.XMLSchema(schema)


def test_committed_project_is_what_the_definitions_generate(
        generated: dict[PurePosixPath, bytes]) -> None:
    committed = sfdx.existing_files(PROJECT)

    stale = sorted(str(p) for p in committed.keys() ^ generated.keys())
    differ = sorted(str(p) for p in committed.keys() & generated.keys()
                    if committed[p] != generated[p])
    assert (stale, differ) == ([], []), (
        "deploy/salesforce is out of date: run python -m referral_sync.salesforce.sfdx "
        "deploy/salesforce")


def test_every_metadata_file_validates_against_the_metadata_api_schema(
        metadata_xsd: object) -> None:
    files = sorted(PROJECT.rglob("*-meta.xml"))
    assert len(files) == len([p for p in sfdx.project_files() if p.suffix == ".xml"])
    failures = {}
    for path in files:
        document = etree.parse(str(path))
        if not metadata_xsd.validate(document):  # type: ignore[attr-defined]
            failures[str(path.relative_to(PROJECT))] = str(
                metadata_xsd.error_log)  # type: ignore[attr-defined]
    assert failures == {}


def test_out_of_order_elements_fail_validation(metadata_xsd: object) -> None:
    good = etree.fromstring(render("CustomField", s.FIELDS["Lead"][0].metadata(
        "Lead", qualified=False), metadata_schema()))
    good.insert(0, good[-1])  # <type> moved before <fullName>

    assert not metadata_xsd.validate(good)  # type: ignore[attr-defined]


def test_files_cover_the_python_definitions(generated: dict[PurePosixPath, bytes]) -> None:
    root = sfdx.SOURCE_DIR
    for obj, spec in s.custom_fields():
        text = generated[root / "objects" / obj / "fields" / f"{spec.name}.field-meta.xml"]
        assert f"<fullName>{spec.name}</fullName>".encode() in text
    permission = generated[root / "permissionsets" / "Referral_Sync.permissionset-meta.xml"]
    assert permission.count(b"<fieldPermissions>") == sum(map(len, s.FIELDS.values()))
    lead_flow = generated[root / "flows" / "Referral_Sync_Lead_Changes.flow-meta.xml"]
    assert b"<actionName>Lead.Referral_Sync_Lead</actionName>" in lead_flow
    assert b"<actionType>outboundMessage</actionType>" in lead_flow
    workflow = generated[root / "workflows" / "Opportunity.workflow-meta.xml"]
    for field in automation.OUTBOUND_FIELDS["Opportunity"]:
        assert f"<fields>{field}</fields>".encode() in workflow
    assert b"<includeSessionId>false</includeSessionId>" in workflow
    project = json.loads(generated[PurePosixPath("sfdx-project.json")])
    assert project["sourceApiVersion"] == s.API_VERSION


def test_conversion_flow_sets_the_opportunity_status_before_save_on_create(
        generated: dict[PurePosixPath, bytes]) -> None:
    path = sfdx.SOURCE_DIR / "flows" / "Referral_Sync_Opportunity_Converted.flow-meta.xml"
    flow = etree.fromstring(generated[path])

    def text(xpath: str) -> list[str]:
        found = flow.xpath(xpath, namespaces={"md": MD})
        return [str(v) for v in found if str(v).strip()]  # not the indentation

    label = StatusMapping().label(ReferralStatus.OPPORTUNITY)
    assert label == "Opportunity" and label in s.STATUS_VALUES
    assert text("md:start/md:triggerType/text()") == ["RecordBeforeSave"]
    assert text("md:start/md:recordTriggerType/text()") == ["Create"]
    assert text("md:start/md:object/text()") == ["Opportunity"]
    assert text("md:start/md:filters/*/text() | md:start/md:filters/md:value/*/text()") == [
        "Referral_Id__c", "IsNull", "false"]
    assert text("md:start/md:connector/md:targetReference/text()") == text(
        "md:assignments/md:name/text()")
    assert text("md:assignments/md:assignmentItems/*/text() | "
                "md:assignments/md:assignmentItems/md:value/*/text()") == [
        "$Record.Referral_Status__c", "Assign", label]
    assert text("md:processType/text()") + text("md:status/text()") == [
        "AutoLaunchedFlow", "Active"]


def test_generator_renders_an_org_specific_copy_and_reports_changes(tmp_path: Path) -> None:
    endpoint = "https://refs.acme.example/webhooks/salesforce/s3cr3t"

    assert sfdx.main([str(tmp_path), "--endpoint-url", endpoint,
                      "--integration-user", "sync@acme.example"]) == 0
    workflow = (tmp_path / sfdx.SOURCE_DIR / "workflows" / "Lead.workflow-meta.xml").read_text()
    assert f"<endpointUrl>{endpoint}</endpointUrl>" in workflow
    assert "<integrationUser>sync@acme.example</integrationUser>" in workflow
    (tmp_path / "README.md").write_text("kept")
    (tmp_path / sfdx.SOURCE_DIR / "objects" / "Lead" / "fields" / "Old__c.field-meta.xml"
     ).write_text("stale")

    changed = sfdx.write_project(tmp_path, sfdx.project_files())

    assert PurePosixPath("force-app/main/default/objects/Lead/fields/Old__c.field-meta.xml") \
        in changed
    assert not (tmp_path / sfdx.SOURCE_DIR / "objects/Lead/fields/Old__c.field-meta.xml").exists()
    assert (tmp_path / "README.md").read_text() == "kept"
    assert sfdx.write_project(tmp_path, sfdx.project_files()) == []


def test_an_unknown_element_is_refused_before_any_file_is_written() -> None:
    with pytest.raises(ValueError, match="CustomField has no element"):
        render("CustomField", {"fullName": "X__c", "lenght": 10}, metadata_schema())
