"""Builders shared by the rules tests: a referee, a referrer snapshot and programs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from referral_sync.crm import ReferrerContext
from referral_sync.models import Referee
from referral_sync.program.loader import LoadedProgram, load_program
from referral_sync.program.schema import CrmMapping, Program
from referral_sync.rules import PolicyStamp

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STAMP = PolicyStamp(version="test-1", content_hash="0123456789abcdef")
MAPPING = CrmMapping()


def make_referee(**overrides: Any) -> Referee:
    data: dict[str, Any] = {
        "first_name": "Dana",
        "last_name": "Lee",
        "email": "dana@prospect-labs.io",
        "company": "Prospect Labs GmbH",
        "country": "DE",
        "employees": 120,
        "industry": "Software",
    }
    data.update(overrides)
    return Referee(**data)


def make_referrer(**overrides: Any) -> ReferrerContext:
    data: dict[str, Any] = {
        "contact_id": "003REF",
        "email": "ann@customer-corp.com",
        "name": "Ann Example",
        "account_id": "001CUST",
        "account_name": "Customer Corp",
        "account_domain": "customer-corp.com",
        "is_paying_customer": True,
        "account_type": "Customer - Direct",
        "customer_since": NOW - timedelta(days=400),
        "owner_id": "005AE",
    }
    data.update(overrides)
    return ReferrerContext(**data)


def make_program(**sections: Any) -> Program:
    """A program with the playbook defaults plus the given sections."""
    return Program.model_validate({"id": "test", "name": "Test program", **sections})


@pytest.fixture(scope="session")
def default_loaded() -> LoadedProgram:
    return load_program(None)


@pytest.fixture(scope="session")
def default_program(default_loaded: LoadedProgram) -> Program:
    return default_loaded.config.program()
