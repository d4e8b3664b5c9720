"""``deploy/hubspot``: the app configuration agrees with the receiver and the schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from referral_sync.hubspot import spec
from referral_sync.hubspot.events import parse_events

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "hubspot"
STANDARD = {"hubspot_owner_id", "dealstage", "amount", "lifecyclestage"}


def load(relative: str) -> dict[str, Any]:
    data = json.loads((DEPLOY / relative).read_text())
    assert isinstance(data, dict)
    return data


def subscriptions() -> list[dict[str, Any]]:
    config = load("src/app/webhooks/webhooks-hsmeta.json")["config"]
    subs = config["subscriptions"]
    return list(subs["crmObjects"]) + list(subs["legacyCrmObjects"])


def test_project_files_are_valid_json_with_the_expected_shape() -> None:
    assert load("hsproject.json")["srcDir"] == "src"
    app = load("src/app/app-hsmeta.json")
    assert app["type"] == "app" and app["config"]["auth"]["type"] == "static"
    scopes = set(app["config"]["auth"]["requiredScopes"])
    assert {"crm.objects.contacts.write", "crm.objects.deals.write",
            "crm.objects.owners.read", "crm.schemas.deals.write"} <= scopes
    optional = set(app["config"]["auth"]["optionalScopes"])
    assert "crm.schemas.custom.write" in optional  # custom objects: Enterprise only
    hooks = load("src/app/webhooks/webhooks-hsmeta.json")
    assert hooks["type"] == "webhooks"
    assert hooks["config"]["settings"]["targetUrl"].endswith("/webhooks/hubspot")


def test_subscribed_properties_exist_in_the_schema_or_hubspot() -> None:
    ours = {p.name for props in spec.PROPERTIES.values() for p in props}
    named = {s["propertyName"] for s in subscriptions() if "propertyName" in s}
    assert named <= ours | STANDARD
    assert {"referral_status", "dealstage"} <= named


def test_every_subscription_is_understood_by_the_receiver() -> None:
    items = [{"eventId": n, "portalId": 62515, "occurredAt": 1795427230000, "objectId": 5,
              "subscriptionType": s["subscriptionType"],
              **({"propertyName": s["propertyName"], "propertyValue": "x"}
                 if "propertyName" in s else {})}
             for n, s in enumerate(subscriptions())]
    events = parse_events(json.dumps(items).encode(), received_at=datetime.now(UTC))
    assert [e.noop_reason for e in events] == [None] * len(items)
    assert {s["subscriptionType"] for s in subscriptions()} >= {"contact.creation",
                                                                "deal.propertyChange"}
