"""Condition trees: load-time validation with key paths, evaluation semantics, traces."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from referral_sync.errors import PolicyError
from referral_sync.models import IntroStrength
from referral_sync.program.conditions import KNOWN_FIELDS, Condition
from referral_sync.program.loader import parse_program
from referral_sync.rules.conditions import FactView, condition_facts, evaluate

from .conftest import NOW, make_referee, make_referrer

_ADAPTER: TypeAdapter[Condition] = TypeAdapter(Condition)


def cond(data: Any) -> Condition:
    return _ADAPTER.validate_python(data)


def program_with_icp(icp: Any) -> str:
    return yaml.safe_dump(
        {"version": "1", "programs": [{"id": "p", "name": "P", "validity": {"icp": icp}}]}
    )


@pytest.mark.parametrize(
    ("icp", "fragment"),
    [
        ({"field": "referee.colour", "op": "eq", "value": "x"}, "unknown field 'referee.colour'"),
        ({"field": "referee.country", "op": "gt", "value": 3}, "not a number"),
        ({"field": "referee.employees", "op": "gte", "value": "many"}, "needs a number"),
        ({"field": "referee.country", "op": "in", "value": "DE"}, "non-empty list"),
        ({"field": "referee.country", "op": "in", "value": []}, "non-empty list"),
        ({"field": "referee.title", "op": "matches", "value": "(unclosed"}, "regular expression"),
        ({"field": "referral.intro_strength", "op": "eq", "value": "warm"}, "strong, weak"),
        ({"field": "referrer.is_partner", "op": "eq", "value": "yes"}, "true/false"),
        ({"field": "referee.country", "op": "eq"}, "needs a value"),
        ({"all": [{"field": "referee.country", "op": "equals", "value": "DE"}]}, "op"),
    ],
)
def test_bad_conditions_are_rejected_at_load_with_their_key_path(icp: Any, fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_program(program_with_icp(icp))
    problems = "\n".join(caught.value.problems)
    assert "programs[0].validity.icp" in problems
    assert fragment in problems


def test_text_compares_case_insensitively_and_numbers_exactly() -> None:
    facts = {"referee.country": "de", "referral.amount": Decimal("0.1")}
    assert evaluate(cond({"field": "referee.country", "op": "eq", "value": "DE"}), facts)[0]
    assert evaluate(cond({"field": "referral.amount", "op": "eq", "value": 0.1}), facts)[0]
    assert evaluate(cond({"field": "referral.amount", "op": "lt", "value": 0.2}), facts)[0]


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", "DE", False),
        ("ne", "DE", True),
        ("in", ["DE"], False),
        ("not_in", ["DE"], True),
        ("gt", 1, False),
        ("contains", "x", False),
        ("exists", None, False),
        ("exists", False, True),
    ],
)
def test_missing_facts_only_satisfy_negative_tests(op: str, value: Any, expected: bool) -> None:
    field = "referee.employees" if op == "gt" else "referee.country"
    clause = cond({"field": field, "op": op, "value": value})
    assert evaluate(clause, {field: None})[0] is expected
    assert evaluate(clause, {field: ""})[0] is expected


def test_text_operators() -> None:
    facts = {"referee.title": "VP of Engineering", "fields.Segment__c": "250"}
    assert evaluate(cond({"field": "referee.title", "op": "starts_with", "value": "vp"}), facts)[0]
    assert evaluate(cond({"field": "referee.title", "op": "ends_with", "value": "ING"}), facts)[0]
    assert evaluate(cond({"field": "referee.title", "op": "contains", "value": "of"}), facts)[0]
    assert evaluate(cond({"field": "referee.title", "op": "matches", "value": r"^vp\b"}), facts)[0]
    # a CRM text field holding a number compares as a number
    assert evaluate(cond({"field": "fields.Segment__c", "op": "gte", "value": 200}), facts)[0]


def test_trace_lists_each_evaluated_clause_and_stops_where_evaluation_stops() -> None:
    tree = cond(
        {
            "any": [
                {"field": "referee.employees", "op": "gte", "value": 1000},
                {"not": {"field": "referee.country", "op": "in", "value": ["US", "CA"]}},
                {"field": "referee.industry", "op": "eq", "value": "Banking"},
            ]
        }
    )
    result, trace = evaluate(tree, {"referee.employees": 40, "referee.country": "DE"})
    assert result is True
    assert [(s.rule, s.outcome) for s in trace] == [
        ("referee.employees gte 1000", "false"),
        ("referee.country in ['US', 'CA']", "false"),
        ("not referee.country in ['US', 'CA']", "true"),
    ]
    assert trace[0].detail == "actual: 40"


def test_condition_facts_cover_every_known_field() -> None:
    referrer = make_referrer(account_type="Channel Partner / Reseller", fields={"Tier__c": "A"})
    facts = condition_facts(
        make_referee(), referrer, intro_strength=IntroStrength.STRONG, now=NOW, program_id="p"
    )
    assert set(facts) >= KNOWN_FIELDS
    assert facts["referrer.tenure_days"] == 400
    assert facts["referrer.is_partner"] is True
    assert facts["fields.Tier__c"] == "A"
    assert facts["referee.domain"] == "prospect-labs.io"
    view = FactView(make_referee(), None, IntroStrength.WEAK, NOW, "p", referrer_email="x@y.com")
    assert view["referrer.email"] == "x@y.com"
    assert view.get("referrer.tenure_days") is None
