"""The app under fuzzing: real components on temporary files, with the Salesforce endpoint
configured so that bodies reach its XML parser instead of stopping at the token check."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from referral_sync.app import Components, build_components
from referral_sync.local.seed import seed
from referral_sync.settings import SalesforceSettings, Settings
from tests.conftest import FakeClock
from webhooks import create_app

SF_TOKEN = "fuzz-endpoint-token"
SF_ORG = "00D000000000001AAA"


@pytest.fixture
def fuzz_components(settings: Settings, clock: FakeClock) -> Iterator[Components]:
    configured = settings.model_copy(update={"salesforce": SalesforceSettings(
        webhook_token=SF_TOKEN, org_id=SF_ORG)})  # type: ignore[arg-type]
    built = build_components(configured, clock=clock)
    seed(built.crm, now=clock())  # type: ignore[arg-type]
    yield built
    built.close()


@pytest.fixture
def app(fuzz_components: Components) -> Flask:
    return create_app(components=fuzz_components)
