"""A small SOQL evaluator for the Salesforce test double.

Supports what referral-sync sends: ``SELECT`` field paths (``Account.Owner.IsActive``) and
child-relationship subqueries (``(SELECT Id FROM Opportunities WHERE ... LIMIT 5)``),
``WHERE`` with AND/OR/NOT and parentheses, ``= != < <= > >= LIKE IN NOT IN``, semi-joins
(``Id IN (SELECT AccountId FROM Contact ...)``), string (with SOQL escapes), number, boolean,
null and datetime literals, ``ORDER BY`` (ASC/DESC) and ``LIMIT``.
Anything else raises ``SoqlError`` — the double answers that as Salesforce does, with HTTP 400
``MALFORMED_QUERY`` — so a query our code builds wrongly fails the tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>'(?:\\.|[^'\\])*')
    | (?P<datetime>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op><=|>=|!=|=|<|>|\(|\)|,)
    | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    )""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"',
            "\\": "\\", "%": "\\%", "_": "\\_"}


class SoqlError(ValueError):
    """The query is not valid SOQL (for this subset)."""


@dataclass(frozen=True)
class Query:
    """A parsed query; in a child subquery ``sobject`` is the relationship name."""

    fields: list[str]
    sobject: str
    where: Callable[[Callable[[str], Any]], bool]
    order: list[tuple[str, bool]]
    limit: int | None
    children: list[Query] = field(default_factory=list)
    semi_joins: list[SemiJoin] = field(default_factory=list)


@dataclass
class SemiJoin:
    """``X IN (SELECT ...)``; whoever runs the outer query fills ``values`` first (the
    parser cannot: the inner query needs the org's records)."""

    query: Query
    values: list[Any] = field(default_factory=list)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise SoqlError(f"unexpected token at {pos}: {text[pos:pos + 20]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _unquote(token: str) -> str:
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            if i + 1 >= len(body) or body[i + 1] not in _ESCAPES:
                raise SoqlError("invalid escape in string literal")
            out.append(_ESCAPES[body[i + 1]])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def as_datetime(value: Any) -> datetime | None:
    """Parse a stored or literal datetime."""
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _compare(left: Any, op: str, right: Any) -> bool:
    if op in ("=", "!="):
        if isinstance(right, str) and isinstance(left, str):
            same = left.lower() == right.lower()
        elif isinstance(right, datetime):
            same = as_datetime(left) == right
        else:
            same = left == right
        return same if op == "=" else not same
    if left is None or right is None:
        return False
    if isinstance(right, datetime):
        left = as_datetime(left)
        if left is None:
            return False
    return {"<": left < right, "<=": left <= right, ">": left > right,
            ">=": left >= right}[op]


def _like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    regex, i = "", 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += {"%": ".*", "_": "."}.get(pattern[i], re.escape(pattern[i]))
        i += 1
    return re.fullmatch(regex, str(value), re.IGNORECASE | re.DOTALL) is not None


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.semi_joins: list[SemiJoin] = []

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def word(self, *words: str) -> bool:
        kind, text = self.peek()
        if kind == "name" and text.upper() in words:
            self.pos += 1
            return True
        return False

    def expect(self, kind: str, text: str | None = None) -> str:
        got_kind, got = self.peek()
        if got_kind != kind or (text is not None and got.upper() != text):
            raise SoqlError(f"expected {text or kind}, got {got!r}")
        self.pos += 1
        return got

    def value(self) -> Any:
        kind, text = self.peek()
        self.pos += 1
        if kind == "string":
            return _unquote(text)
        if kind == "number":
            return float(text)
        if kind == "datetime":
            return as_datetime(text)
        if kind == "name" and text.upper() in ("TRUE", "FALSE"):
            return text.upper() == "TRUE"
        if kind == "name" and text.upper() == "NULL":
            return None
        raise SoqlError(f"expected a literal, got {text!r}")

    def condition(self) -> Callable[[Callable[[str], Any]], bool]:
        terms = [self.conjunction()]
        while self.word("OR"):
            terms.append(self.conjunction())
        return lambda get: any(t(get) for t in terms)

    def conjunction(self) -> Callable[[Callable[[str], Any]], bool]:
        factors = [self.factor()]
        while self.word("AND"):
            factors.append(self.factor())
        return lambda get: all(f(get) for f in factors)

    def factor(self) -> Callable[[Callable[[str], Any]], bool]:
        if self.word("NOT"):
            inner = self.factor()
            return lambda get: not inner(get)
        if self.peek() == ("op", "("):
            self.pos += 1
            inner = self.condition()
            self.expect("op", ")")
            return inner
        name = self.expect("name")
        negated = self.word("NOT")
        if self.word("IN"):
            member = self.members(name)
            return (lambda get: not member(get)) if negated else member
        if negated:
            raise SoqlError("expected IN after NOT")
        if self.word("LIKE"):
            kind, text = self.peek()
            if kind != "string":
                raise SoqlError("LIKE needs a string")
            self.pos += 1
            pattern = text[1:-1]  # _like treats every backslash escape as a literal
            return lambda get: _like(get(name), pattern)
        op = self.expect("op")
        if op not in ("=", "!=", "<", "<=", ">", ">="):
            raise SoqlError(f"unexpected operator {op!r}")
        right = self.value()
        return lambda get: _compare(get(name), op, right)

    def members(self, name: str) -> Callable[[Callable[[str], Any]], bool]:
        """The rest of ``name IN (...)``: a value list or a semi-join."""
        self.expect("op", "(")
        if self.peek()[0] == "name" and self.peek()[1].upper() == "SELECT":
            inner = self.query(nested=True)
            if len(inner.fields) != 1 or inner.children:
                raise SoqlError("a semi-join subquery selects exactly one field")
            self.expect("op", ")")
            semi = SemiJoin(inner)
            self.semi_joins.append(semi)
            return lambda get: any(_compare(get(name), "=", v) for v in semi.values)
        values = [self.value()]
        while self.peek() == ("op", ","):
            self.pos += 1
            values.append(self.value())
        self.expect("op", ")")
        return lambda get: any(_compare(get(name), "=", v) for v in values)

    def select_list(self, *, nested: bool) -> tuple[list[str], list[Query]]:
        """Field paths and (at the top level only) child-relationship subqueries."""
        fields: list[str] = []
        children: list[Query] = []
        while True:
            if self.peek() == ("op", "(") and not nested:
                self.pos += 1
                children.append(self.query(nested=True))
                self.expect("op", ")")
            else:
                fields.append(self.expect("name"))
            if self.peek() != ("op", ","):
                return fields, children
            self.pos += 1

    def query(self, *, nested: bool = False) -> Query:
        """``SELECT ... FROM ... [WHERE] [ORDER BY] [LIMIT]``; stops before a closing
        parenthesis when ``nested``."""
        outer, self.semi_joins = self.semi_joins, []
        self.expect("name", "SELECT")
        fields, children = self.select_list(nested=nested)
        self.expect("name", "FROM")
        sobject = self.expect("name")
        where: Callable[[Callable[[str], Any]], bool] = lambda get: True  # noqa: E731
        if self.word("WHERE"):
            where = self.condition()
        order = self.order_by()
        limit = int(float(self.value())) if self.word("LIMIT") else None
        query = Query(fields, sobject, where, order, limit, children, self.semi_joins)
        self.semi_joins = outer
        return query

    def order_by(self) -> list[tuple[str, bool]]:
        order: list[tuple[str, bool]] = []
        if not self.word("ORDER"):
            return order
        self.expect("name", "BY")
        while True:
            name = self.expect("name")
            descending = self.word("DESC")
            if not descending:
                self.word("ASC")
            order.append((name, descending))
            if self.peek() != ("op", ","):
                return order
            self.pos += 1


def parse(text: str) -> Query:
    """Parse one SOQL query.

    Raises:
        SoqlError: when the query is outside the supported subset or malformed.
    """
    parser = _Parser(_tokens(text))
    query = parser.query()
    if parser.peek()[0] != "end":
        raise SoqlError(f"unexpected {parser.peek()[1]!r}")
    return query
