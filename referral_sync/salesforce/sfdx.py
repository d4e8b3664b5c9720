"""Write the Salesforce source-format project from the Python definitions.

``python -m referral_sync.salesforce.sfdx deploy/salesforce`` regenerates the committed
project; a test checks the committed files equal what this writes. Pass ``--endpoint-url``
and ``--integration-user`` to render a deployable copy for one org (into another folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from referral_sync.salesforce import automation
from referral_sync.salesforce import schema as s
from referral_sync.salesforce.xsd import MetadataSchema, metadata_schema, render

SOURCE_DIR = PurePosixPath("force-app/main/default")
#: Files owned by the generator; anything else under the project (README.md) is left alone.
GENERATED_ROOTS = ("sfdx-project.json", "force-app")


def _top_level(data: dict[str, Any]) -> dict[str, Any]:
    # Source format names a top-level component by its file name, not a fullName element.
    return {k: v for k, v in data.items() if k != "fullName"}


def project_files(
    endpoint_url: str = automation.PLACEHOLDER_ENDPOINT,
    integration_user: str = automation.PLACEHOLDER_USER,
    schema: MetadataSchema | None = None,
) -> dict[PurePosixPath, bytes]:
    """Every generated file by its path relative to the project root."""
    xsd = schema or metadata_schema()
    root = SOURCE_DIR
    files: dict[PurePosixPath, bytes] = {
        PurePosixPath("sfdx-project.json"): _project_json(),
        root / "objects" / s.REWARD_OBJECT / f"{s.REWARD_OBJECT}.object-meta.xml":
            render("CustomObject", _top_level(s.reward_object()), xsd),
        root / "permissionsets" / f"{s.PERMISSION_SET}.permissionset-meta.xml":
            render("PermissionSet", _top_level(s.permission_set()), xsd),
        root / "LeadConvertSettings" / "LeadConvertSettings.LeadConvertSetting-meta.xml":
            render("LeadConvertSettings", _top_level(s.lead_convert_settings()), xsd),
    }
    for obj, spec in s.custom_fields():
        path = root / "objects" / obj / "fields" / f"{spec.name}.field-meta.xml"
        files[path] = render("CustomField", spec.metadata(obj, qualified=False), xsd)
    for name, view in automation.lead_list_views().items():
        path = root / "objects" / "Lead" / "listViews" / f"{name}.listView-meta.xml"
        files[path] = render("ListView", view, xsd)
    for obj in automation.OUTBOUND_FIELDS:
        files[root / "workflows" / f"{obj}.workflow-meta.xml"] = render(
            "Workflow", automation.workflow(obj, endpoint_url, integration_user), xsd)
        files[root / "flows" / f"{automation.flow_name(obj)}.flow-meta.xml"] = render(
            "Flow", automation.flow(obj), xsd)
    files[root / "flows" / f"{automation.CONVERSION_FLOW}.flow-meta.xml"] = render(
        "Flow", automation.conversion_flow(), xsd)
    return files


def _project_json() -> bytes:
    project = {
        "packageDirectories": [{"path": "force-app", "default": True}],
        "name": "referral-sync",
        "namespace": "",
        "sourceApiVersion": s.API_VERSION,
    }
    return (json.dumps(project, indent=2) + "\n").encode()


def existing_files(target: Path) -> dict[PurePosixPath, bytes]:
    """The generator-owned files currently under ``target``."""
    found: dict[PurePosixPath, bytes] = {}
    for top in GENERATED_ROOTS:
        base = target / top
        paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in paths:
            found[PurePosixPath(path.relative_to(target).as_posix())] = path.read_bytes()
    return found


def write_project(target: Path, files: dict[PurePosixPath, bytes]) -> list[PurePosixPath]:
    """Write ``files`` under ``target``, removing stale generated files; returns what changed."""
    current = existing_files(target)
    changed = sorted(p for p in files.keys() | current.keys() if files.get(p) != current.get(p))
    for rel in changed:
        path = target / Path(rel)
        if rel in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files[rel])
        else:
            path.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: regenerate the project and list what changed."""
    parser = argparse.ArgumentParser(prog="python -m referral_sync.salesforce.sfdx",
                                     description=__doc__)
    parser.add_argument("target", type=Path, help="project folder, e.g. deploy/salesforce")
    parser.add_argument("--endpoint-url", default=automation.PLACEHOLDER_ENDPOINT,
                        help="Outbound Message endpoint incl. the webhook token")
    parser.add_argument("--integration-user", default=automation.PLACEHOLDER_USER,
                        help="username the Outbound Messages are sent as")
    args = parser.parse_args(argv)
    changed = write_project(args.target, project_files(args.endpoint_url, args.integration_user))
    for rel in changed:
        print(f"wrote {rel}")
    print(f"{len(changed)} file(s) changed" if changed else "up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
