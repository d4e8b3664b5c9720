"""The condition tree RevOps write in the program file: ``all`` / ``any`` / ``not`` nodes and
``field op value`` leaves, validated at load time (unknown fields and operators are rejected
with their key path). Evaluation, with one trace step per clause, is in ``rules.conditions``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Facts a condition may test. ``referee.*`` comes from the submission, ``referrer.*`` from the
#: CRM snapshot, ``fields.<name>`` from CRM fields mapped in the program's ``crm`` section.
KNOWN_FIELDS: frozenset[str] = frozenset(
    {
        "referee.email",
        "referee.domain",
        "referee.company",
        "referee.country",
        "referee.industry",
        "referee.employees",
        "referee.title",
        "referral.intro_strength",
        "referral.program",
        "referral.amount",
        "referrer.email",
        "referrer.account_type",
        "referrer.account_status",
        "referrer.account_name",
        "referrer.tenure_days",
        "referrer.qualified_count",
        "referrer.owner_id",
        "referrer.is_partner",
    }
)


class Operator(StrEnum):
    """Comparison operators for condition leaves."""

    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    MATCHES = "matches"
    EXISTS = "exists"


_LIST_OPERATORS = {Operator.IN, Operator.NOT_IN}
_ORDER_OPERATORS = {Operator.GT, Operator.GTE, Operator.LT, Operator.LTE}
_TEXT_OPERATORS = {Operator.CONTAINS, Operator.STARTS_WITH, Operator.ENDS_WITH, Operator.MATCHES}

#: Facts that hold numbers: order operators only make sense on these (and on ``fields.*``,
#: whose type the CRM decides).
NUMERIC_FIELDS: frozenset[str] = frozenset(
    {"referee.employees", "referral.amount", "referrer.tenure_days", "referrer.qualified_count"}
)
#: Facts that hold true/false.
BOOLEAN_FIELDS: frozenset[str] = frozenset({"referrer.is_partner"})
#: Facts with a closed set of values; a typo in a value would make the clause never match.
ENUM_FIELDS: dict[str, frozenset[str]] = {"referral.intro_strength": frozenset({"strong", "weak"})}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _check_typed_value(field: str, op: Operator, value: object) -> None:
    """Reject values that can never match the field's type (caught at load, not at 3 a.m.)."""
    values = value if isinstance(value, list) else [value]
    numeric_op = op not in _TEXT_OPERATORS | {Operator.EXISTS}
    if field in NUMERIC_FIELDS and numeric_op and not all(_is_number(v) for v in values):
        raise ValueError(f"{field} is a number; compare it with numbers, not {value!r}")
    if field in BOOLEAN_FIELDS and op in {Operator.EQ, Operator.NE} and not isinstance(value, bool):
        raise ValueError(f"{field} is true/false; got {value!r}")
    allowed = ENUM_FIELDS.get(field)
    if allowed and op in {Operator.EQ, Operator.NE, Operator.IN, Operator.NOT_IN}:
        wrong = [v for v in values if str(v).lower() not in allowed]
        if wrong:
            raise ValueError(f"{field} is one of {', '.join(sorted(allowed))}; got {wrong!r}")


class Clause(BaseModel):
    """``field op value``: one test of one fact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    op: Operator = Operator.EQ
    value: Any = None

    @field_validator("field")
    @classmethod
    def _known_field(cls, name: str) -> str:
        if name in KNOWN_FIELDS or (name.startswith("fields.") and len(name) > len("fields.")):
            return name
        known = ", ".join(sorted(KNOWN_FIELDS))
        raise ValueError(f"unknown field {name!r}; use one of {known} or fields.<crm field>")

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Clause:
        op, value = self.op, self.value
        if op is Operator.EXISTS:
            if value is not None and not isinstance(value, bool):
                raise ValueError("operator 'exists' takes true, false or no value")
            return self
        if value is None:
            raise ValueError(f"operator {op.value!r} needs a value")
        if op in _LIST_OPERATORS:
            if not isinstance(value, list) or not value:
                raise ValueError(f"operator {op.value!r} needs a non-empty list value")
            if any(isinstance(v, list | dict) or v is None for v in value):
                raise ValueError(f"operator {op.value!r} needs a list of plain values")
        elif isinstance(value, list | dict):
            raise ValueError(f"operator {op.value!r} needs a single value, not {value!r}")
        if op in _ORDER_OPERATORS:
            if not _is_number(value):
                raise ValueError(f"operator {op.value!r} needs a number, not {value!r}")
            if self.field in KNOWN_FIELDS and self.field not in NUMERIC_FIELDS:
                raise ValueError(f"{self.field} is not a number; {op.value!r} needs a number field")
        if op in _TEXT_OPERATORS and not isinstance(value, str):
            raise ValueError(f"operator {op.value!r} needs a text value, not {value!r}")
        if op is Operator.MATCHES:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        _check_typed_value(self.field, op, value)
        return self

    def describe(self) -> str:
        """Human-readable form used in traces, e.g. ``referee.country in ['DE', 'FR']``."""
        if self.op is Operator.EXISTS:
            return f"{self.field} {'is missing' if self.value is False else 'exists'}"
        return f"{self.field} {self.op.value} {self.value!r}"


class AllOf(BaseModel):
    """True when every child is true."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    all: list[Condition] = Field(min_length=1)


class AnyOf(BaseModel):
    """True when at least one child is true."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    any: list[Condition] = Field(min_length=1)


class NotOf(BaseModel):
    """True when the child is false."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    not_: Condition = Field(alias="not")


Condition = AllOf | AnyOf | NotOf | Clause

AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()
