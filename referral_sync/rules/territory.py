"""The territory table: ordered rows, the first row whose condition holds wins.

A 100-row table evaluated top to bottom costs a clause test per row, so the table is compiled
once (kept on the frozen ``Routing`` model) with an index on the field most rows test with
``eq``/``in`` (typically ``referee.country``) and a range filter on the numeric field most rows
bound (typically ``referee.employees``): only the rows that could match this referral's
values are evaluated, in table order. The trace says which rows the index left
out and why, and shows every clause of every row it evaluated. The index is a pure filter: a
row it leaves out has a clause that is false for this referral (tested against plain
top-to-bottom evaluation by the property tests).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial

from referral_sync.program.conditions import AllOf, AnyOf, Clause, Condition, Operator
from referral_sync.program.schema import Territory
from referral_sync.rules.conditions import (
    Facts,
    Notes,
    Test,
    as_number,
    compile_condition,
    explain,
    norm,
)
from referral_sync.rules.findings import Step

#: An index pays off once this many rows test the same field.
_MIN_INDEXED_ROWS = 3


def _keys(condition: Condition, field: str) -> frozenset[object] | None:
    """The values of ``field`` for which ``condition`` can be true; None = any value."""
    if isinstance(condition, Clause):
        if condition.field != field:
            return None
        if condition.op is Operator.EQ:
            return frozenset({norm(condition.value)})
        if condition.op is Operator.IN:
            return frozenset(norm(v) for v in condition.value)
        return None
    if isinstance(condition, AllOf):
        found = [k for k in (_keys(c, field) for c in condition.all) if k is not None]
        return frozenset.intersection(*found) if found else None
    if isinstance(condition, AnyOf):
        parts = [_keys(c, field) for c in condition.any]
        if any(p is None for p in parts):
            return None
        return frozenset().union(*(p for p in parts if p is not None))
    return None


def _tested_fields(condition: Condition) -> set[str]:
    if isinstance(condition, Clause):
        return {condition.field} if condition.op in (Operator.EQ, Operator.IN) else set()
    if isinstance(condition, AllOf):
        return set().union(*(_tested_fields(c) for c in condition.all))
    if isinstance(condition, AnyOf):
        return set.intersection(*(_tested_fields(c) for c in condition.any))
    return set()


Number = int | Decimal
#: Closed bounds [low, high] a numeric fact must lie in for a row to possibly match.
Bounds = tuple[Number | None, Number | None]
_ORDER = {Operator.GT, Operator.GTE, Operator.LT, Operator.LTE}


def _bounds(condition: Condition, field: str) -> Bounds | None:
    """A superset of the values of numeric ``field`` for which ``condition`` can be true."""
    if isinstance(condition, Clause):
        if condition.field != field or condition.op not in _ORDER:
            return None
        bound = as_number(condition.value)
        if condition.op in (Operator.GT, Operator.GTE):
            return (bound, None)
        return (None, bound)
    if isinstance(condition, AllOf):
        found = [b for b in (_bounds(c, field) for c in condition.all) if b is not None]
        if not found:
            return None
        lows = [lo for lo, _ in found if lo is not None]
        highs = [hi for _, hi in found if hi is not None]
        return (max(lows) if lows else None, min(highs) if highs else None)
    return None


def _ranged_fields(condition: Condition) -> set[str]:
    if isinstance(condition, Clause):
        return {condition.field} if condition.op in _ORDER else set()
    if isinstance(condition, AllOf):
        return set().union(*(_ranged_fields(c) for c in condition.all))
    return set()


@dataclass(frozen=True)
class Row:
    """A compiled row, with the names the trace gives it."""

    number: int
    territory: Territory
    test: Test | None
    label: str  # "territory #3 DACH": the row's evaluation
    rule: str  # "territory DACH": what follows from the match


def _index_note(shown: list[tuple[str, object]]) -> str:
    facts = ", ".join(f"{name} = {value!r}" for name, value in shown)
    return (
        f"indexed on {facts}; the other rows test these facts with values "
        "this referral does not have and were not evaluated"
    )


@dataclass(frozen=True)
class TerritoryTable:
    """A compiled territory table with its optional indexes: ``key_field`` (tested with
    ``eq``/``in``) and ``range_field`` (tested with ``gt``/``gte``/``lt``/``lte``)."""

    rows: tuple[Row, ...]
    key_field: str | None = None
    by_value: dict[object, tuple[int, ...]] = field(default_factory=dict)
    unconstrained: tuple[int, ...] = ()
    range_field: str | None = None
    bounds: tuple[Bounds | None, ...] = ()
    #: "n of N rows can match" for every n, written once
    can_match: tuple[str, ...] = ()

    def _candidates(self, facts: Facts) -> tuple[Sequence[int], Step | None]:
        chosen: Sequence[int] = range(len(self.rows))
        shown: list[tuple[str, object]] = []
        if self.key_field is not None:
            value = facts.get(self.key_field)
            try:
                key = value.strip().casefold() if type(value) is str else norm(value)
                chosen = self.by_value.get(key, self.unconstrained)
                shown.append((self.key_field, value))
            except TypeError:  # an unhashable CRM value: no shortcut on this field
                pass
        if self.range_field is not None:
            raw = facts.get(self.range_field)
            chosen = _in_range(chosen, self.bounds, raw if type(raw) is int else as_number(raw))
            shown.append((self.range_field, raw))
        if not shown:
            return chosen, None
        return chosen, (
            "territories",
            self.can_match[len(chosen)],
            partial(_index_note, shown),
        )

    def first_match(self, facts: Facts, trace: list[Step]) -> Territory | None:
        """The first row whose condition holds (each evaluated row traced), or None."""
        row = self.first_row(facts, trace)
        return row.territory if row is not None else None

    def first_row(self, facts: Facts, trace: list[Step]) -> Row | None:
        """``first_match``, returning the compiled row."""
        candidates, step = self._candidates(facts)
        if step is not None:
            trace.append(step)
        rows = self.rows
        for position in candidates:
            row = rows[position]
            if row.test is None:
                trace.append((row.label, "match", "no condition"))
                return row
            notes: Notes = []
            if row.test(facts, notes):
                trace.append((row.label, "match", partial(explain, notes)))
                return row
            trace.append((row.label, "no match", partial(explain, notes)))
        detail = f"none of {len(rows)} rows matched" if rows else "no territory rows"
        trace.append(("territories", "no match", detail))
        return None


def _in_range(
    chosen: Sequence[int], bounds: tuple[Bounds | None, ...], value: Number | None
) -> list[int]:
    """The rows of ``chosen`` whose closed bounds hold ``value``; a row without bounds on the
    field always can, a missing value can only match such a row."""
    if value is None:
        return [i for i in chosen if bounds[i] is None]
    return [
        i
        for i in chosen
        if (b := bounds[i]) is None
        or ((b[0] is None or b[0] <= value) and (b[1] is None or value <= b[1]))
    ]


def _most_tested(
    conditions: list[Condition], fields: Callable[[Condition], set[str]]
) -> str | None:
    counts: Counter[str] = Counter()
    for condition in conditions:
        counts.update(fields(condition))
    if not counts:
        return None
    name, rows = counts.most_common(1)[0]
    return name if rows >= _MIN_INDEXED_ROWS else None


def compile_table(territories: list[Territory]) -> TerritoryTable:
    """Compile the rows and index the most tested fields, where that pays off."""
    rows = tuple(
        Row(
            i + 1,
            t,
            compile_condition(t.when) if t.when is not None else None,
            f"territory #{i + 1} {t.name}",
            f"territory {t.name}",
        )
        for i, t in enumerate(territories)
    )
    conditions = [t.when for t in territories if t.when is not None]
    key_field = _most_tested(conditions, _tested_fields)
    range_field = _most_tested(conditions, _ranged_fields)
    by_value: dict[object, tuple[int, ...]] = {}
    unconstrained: tuple[int, ...] = ()
    if key_field is not None:
        keys = [_keys(t.when, key_field) if t.when is not None else None for t in territories]
        unconstrained = tuple(i for i, k in enumerate(keys) if k is None)
        values = set().union(*(k for k in keys if k is not None))
        by_value = {
            value: tuple(i for i, k in enumerate(keys) if k is None or value in k)
            for value in values
        }
    bounds: tuple[Bounds | None, ...] = ()
    if range_field is not None:
        bounds = tuple(
            _bounds(t.when, range_field) if t.when is not None else None for t in territories
        )
    can_match = tuple(f"{n} of {len(rows)} rows can match" for n in range(len(rows) + 1))
    return TerritoryTable(rows, key_field, by_value, unconstrained, range_field, bounds, can_match)


def first_match_plain(territories: list[Territory], facts: Facts) -> Territory | None:
    """Top-to-bottom evaluation without the index: the reference the index must agree with."""
    for territory in territories:
        if territory.when is None or compile_condition(territory.when)(facts, None):
            return territory
    return None
