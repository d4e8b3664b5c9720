"""Evaluate the condition trees of the program file, recording every evaluated clause.

A condition is compiled once into nested closures (kept on the frozen condition node, see
``rules._memo``) so routing a referral through a 100-row territory table costs microseconds.
Semantics, stated once so the territory index (``rules.territory``) can rely on them:

* text compares case-insensitively (``"de"`` equals ``"DE"``);
* numbers compare exactly (``0.1`` is ``Decimal("0.1")``), text such as ``"250"`` in a CRM
  field counts as a number for ``gt``/``gte``/``lt``/``lte``;
* a missing fact (``None`` or empty text) makes every test false except ``ne``, ``not_in``
  and ``exists: false``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import Any, TypeAlias

from referral_sync.crm import ReferrerContext
from referral_sync.models import IntroStrength, Referee, TraceStep
from referral_sync.program.conditions import (
    KNOWN_FIELDS,
    AllOf,
    AnyOf,
    Clause,
    Condition,
    Operator,
)
from referral_sync.rules._memo import cached_on

__all__ = [
    "KNOWN_FIELDS",
    "Facts",
    "Notes",
    "Test",
    "as_number",
    "compile_condition",
    "FactView",
    "condition_facts",
    "describe",
    "evaluate",
    "explain",
    "norm",
]

Facts = Mapping[str, object]
#: Evaluated clauses in order: (clause as written, result, the fact's actual value).
Notes = list[tuple[str, bool, object]]
Test: TypeAlias = Callable[[Facts, Notes | None], bool]


def norm(value: object) -> object:
    """The comparison key of a fact or a clause value (see the module docstring)."""
    if isinstance(value, str):
        return value.strip().casefold()
    if isinstance(value, float):
        return Decimal(str(value))
    return value


def as_number(value: object) -> int | Decimal | None:
    """The number a fact or clause value stands for (text such as ``"250"`` included)."""
    if type(value) is int:  # the usual case, checked first (a bool is not a number here)
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | Decimal):
        return value
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


def _missing(value: object) -> bool:
    return value is None or value == ""


_Predicate = Callable[[object], bool]
#: Marks the note of a ``not`` node, which has no fact value of its own.
_NEGATION = object()


_COMPARE: dict[Operator, Callable[[Any, Any], bool]] = {
    Operator.GT: operator.gt,
    Operator.GTE: operator.ge,
    Operator.LT: operator.lt,
    Operator.LTE: operator.le,
}


def _text(op: Operator, value: str) -> _Predicate:
    key = value.strip().casefold()
    if op is Operator.MATCHES:
        pattern = re.compile(value, re.IGNORECASE)
        return lambda x: pattern.search(str(x)) is not None
    if op is Operator.STARTS_WITH:
        return lambda x: isinstance(x, str) and x.casefold().startswith(key)
    if op is Operator.ENDS_WITH:
        return lambda x: isinstance(x, str) and x.casefold().endswith(key)

    def contains(x: object) -> bool:
        if isinstance(x, str):
            return key in x.casefold()
        if isinstance(x, list | tuple | set | frozenset):
            return key in {norm(item) for item in x}
        return False

    return contains


def _key(x: object) -> object:
    # norm() with text, by far the most common fact, handled without a call
    return x.strip().casefold() if type(x) is str else norm(x)


def _predicate(clause: Clause) -> _Predicate:
    """What the clause says about a present (non-missing) fact (gt/gte/lt/lte: see
    ``_compile_order``)."""
    op, value = clause.op, clause.value
    # eq and in (what territory tables and strategic conditions test) inline _key
    if op in (Operator.EQ, Operator.NE):
        key = norm(value)
        if op is Operator.EQ:
            return lambda x: (x.strip().casefold() if type(x) is str else norm(x)) == key
        return lambda x: _key(x) != key
    if op in (Operator.IN, Operator.NOT_IN):
        keys = frozenset(norm(v) for v in value)
        if op is Operator.IN:
            return lambda x: (x.strip().casefold() if type(x) is str else norm(x)) in keys
        return lambda x: _key(x) not in keys
    if op is Operator.EXISTS:
        return lambda x: value is not False
    return _text(op, str(value))


def _reader(field: str) -> Callable[[Facts], object]:
    """How a compiled clause reads ``field``: a FactView's getter called directly when the
    field has one (the same value as ``facts.get(field)``, without the lookup per call)."""
    getter = _GETTERS.get(field)
    if getter is None:
        return lambda facts: facts.get(field)
    return lambda facts: getter(facts) if type(facts) is FactView else facts.get(field)


def _compile_clause(clause: Clause) -> Test:
    field = clause.field
    if clause.op in _COMPARE:
        return _compile_order(clause)
    described = clause.describe()
    present = _predicate(clause)
    # ne / not_in / "exists: false" hold for a missing fact; everything else fails on it.
    when_missing = clause.op in (Operator.NE, Operator.NOT_IN) or (
        clause.op is Operator.EXISTS and clause.value is False
    )
    read = _reader(field)

    def test(facts: Facts, notes: Notes | None) -> bool:
        actual = read(facts)
        result = when_missing if actual is None or actual == "" else present(actual)
        if notes is not None:
            notes.append((described, result, actual))
        return result

    return test


def _compile_order(clause: Clause) -> Test:
    """``_compile_clause`` for gt/gte/lt/lte with the predicate inlined: territory rows
    bound employee counts, so these run several times for every routed referral."""
    field, described = clause.field, clause.describe()
    compare = _COMPARE[clause.op]
    bound = as_number(clause.value)
    assert bound is not None  # guaranteed by Clause validation
    read = _reader(field)

    def test(facts: Facts, notes: Notes | None) -> bool:
        actual = read(facts)
        number = actual if type(actual) is int else as_number(actual)  # None when missing
        result = number is not None and compare(number, bound)
        if notes is not None:
            notes.append((described, result, actual))
        return result

    return test


def _compile_group(tests: list[Test], *, want: bool) -> Test:
    # all: stop at the first false; any: stop at the first true. Unevaluated clauses are
    # not noted, so the trace shows exactly what was looked at.
    def test(facts: Facts, notes: Notes | None) -> bool:
        for child in tests:
            if child(facts, notes) is want:
                return want
        return not want

    return test


def _compile(condition: Condition) -> Test:
    if isinstance(condition, Clause):
        return _compile_clause(condition)
    if isinstance(condition, AllOf):
        return _compile_group([compile_condition(c) for c in condition.all], want=False)
    if isinstance(condition, AnyOf):
        return _compile_group([compile_condition(c) for c in condition.any], want=True)
    inner = compile_condition(condition.not_)
    described = f"not {describe(condition.not_)}"

    def negate(facts: Facts, notes: Notes | None) -> bool:
        result = not inner(facts, notes)
        if notes is not None:
            notes.append((described, result, _NEGATION))
        return result

    return negate


def describe(condition: Condition) -> str:
    """The condition as one readable expression, e.g. ``(a or not b)``."""
    if isinstance(condition, Clause):
        return condition.describe()
    if isinstance(condition, AllOf):
        return "(" + " and ".join(describe(c) for c in condition.all) + ")"
    if isinstance(condition, AnyOf):
        return "(" + " or ".join(describe(c) for c in condition.any) + ")"
    return f"not {describe(condition.not_)}"


def compile_condition(condition: Condition) -> Test:
    """The condition as a fast test ``(facts, notes) -> bool``; built once per node."""
    return cached_on(condition, "_rs_test", lambda: _compile(condition))


def _shown(value: object) -> str:
    return "missing" if _missing(value) else repr(value)


def explain(notes: Notes) -> str:
    """One readable line for a list of evaluated clauses, e.g. for a territory row."""
    return "; ".join(
        f"{text} → {'true' if result else 'false'}"
        + ("" if actual is _NEGATION else f" ({_shown(actual)})")
        for text, result, actual in notes
    )


def evaluate(condition: Condition, facts: Facts) -> tuple[bool, list[TraceStep]]:
    """Evaluate ``condition`` against ``facts``: the result and one step per evaluated clause."""
    notes: Notes = []
    result = compile_condition(condition)(facts, notes)
    steps = [
        TraceStep(
            rule=text,
            outcome="true" if ok else "false",
            detail="" if actual is _NEGATION else f"actual: {_shown(actual)}",
        )
        for text, ok, actual in notes
    ]
    return result, steps


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class FactView(Mapping[str, object]):
    """The facts a condition can test, computed only when a clause asks for them.

    Routing a referral usually tests two or three facts; building all of them up front
    would cost more than the whole territory lookup. ``referrer_email`` and
    ``referrer_account_name`` stand in when there is no CRM snapshot of the referrer.
    """

    __slots__ = (
        "amount",
        "intro_strength",
        "now",
        "program_id",
        "qualified_count",
        "referee",
        "referrer",
        "referrer_account_name",
        "referrer_email",
    )

    def __init__(
        self,
        referee: Referee,
        referrer: ReferrerContext | None,
        intro_strength: IntroStrength,
        now: datetime,
        program_id: str,
        qualified_count: int = 0,
        amount: Decimal | None = None,
        referrer_email: str | None = None,
        referrer_account_name: str | None = None,
    ) -> None:
        self.referee = referee
        self.referrer = referrer
        self.intro_strength = intro_strength
        self.now = now
        self.program_id = program_id
        self.qualified_count = qualified_count
        self.amount = amount
        self.referrer_email = referrer_email
        self.referrer_account_name = referrer_account_name

    def get(self, key: str, default: object = None) -> object:
        """The fact named ``key`` (None when missing)."""
        getter = _GETTERS.get(key)
        if getter is not None:
            return getter(self)
        if key.startswith("fields.") and self.referrer is not None:
            return self.referrer.fields.get(key[len("fields.") :], default)
        return default

    def __getitem__(self, key: str) -> object:
        if key not in _GETTERS and not key.startswith("fields."):
            raise KeyError(key)
        return self.get(key)

    def __iter__(self) -> Iterator[str]:
        yield from _GETTERS
        if self.referrer is not None:
            yield from (f"fields.{name}" for name in self.referrer.fields)

    def __len__(self) -> int:
        return len(_GETTERS) + (len(self.referrer.fields) if self.referrer else 0)


def _tenure_days(view: FactView) -> int | None:
    since = view.referrer.customer_since if view.referrer else None
    return (_aware(view.now) - _aware(since)).days if since else None


def _from_referrer(name: str) -> Callable[[FactView], object]:
    return lambda view: getattr(view.referrer, name) if view.referrer is not None else None


_GETTERS: dict[str, Callable[[FactView], object]] = {
    "referee.email": lambda v: str(v.referee.email),
    "referee.domain": lambda v: v.referee.domain,
    "referee.company": attrgetter("referee.company"),
    "referee.country": attrgetter("referee.country"),
    "referee.industry": attrgetter("referee.industry"),
    "referee.employees": attrgetter("referee.employees"),
    "referee.title": attrgetter("referee.title"),
    # str() of a StrEnum member is its value, without the enum's slower .value descriptor
    "referral.intro_strength": lambda v: str(v.intro_strength),
    "referral.program": lambda v: v.program_id,
    "referral.amount": lambda v: v.amount,
    "referrer.email": lambda v: v.referrer.email if v.referrer else v.referrer_email,
    "referrer.account_type": _from_referrer("account_type"),
    "referrer.account_status": _from_referrer("account_status"),
    "referrer.account_name": lambda v: (
        v.referrer.account_name if v.referrer is not None else v.referrer_account_name
    ),
    "referrer.tenure_days": _tenure_days,
    "referrer.qualified_count": lambda v: v.qualified_count,
    "referrer.owner_id": _from_referrer("owner_id"),
    # Salesforce's standard Account.Type picklist has "Channel Partner / Reseller" and
    # "Technology Partner"; HubSpot portals use similar company types.
    "referrer.is_partner": lambda v: (
        "partner" in ((v.referrer and v.referrer.account_type) or "").casefold()
    ),
}


def condition_facts(
    referee: Referee,
    referrer: ReferrerContext | None,
    *,
    intro_strength: IntroStrength,
    now: datetime,
    program_id: str,
    qualified_count: int = 0,
    amount: Decimal | None = None,
    referrer_email: str | None = None,
) -> dict[str, object]:
    """The facts a condition can test (keys = ``KNOWN_FIELDS`` plus ``fields.<crm field>``).

    ``referrer.is_partner`` is true when the referrer's account type names a partner.
    """
    view = FactView(
        referee, referrer, intro_strength, now, program_id, qualified_count, amount, referrer_email
    )
    return {key: view.get(key) for key in view}
