"""Shared vocabulary of the intake checks: the policy stamp every decision carries, the
rejection categories, and a ``Finding`` (one check that fired, with its stable code and the
sentence a referrer may read)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import NamedTuple, Protocol

from referral_sync.models import Trace
from referral_sync.program.schema import Verdict

#: A step's detail: the sentence, or a callable that writes it when the trace is read.
#: A callable must capture values, never state that changes after the decision (counters).
Detail = str | Callable[[], str]
#: A trace step under construction: (rule, outcome, detail). The rules collect these and
#: the decision's ``Trace`` turns them into ``TraceStep`` models only when someone reads it.
Step = tuple[str, str, Detail]


def as_trace(steps: list[Step]) -> Trace:
    """The ``Decision.trace`` of these steps."""
    return Trace(steps)


def text(detail: Detail) -> str:
    """The sentence of a step's detail."""
    return detail if isinstance(detail, str) else detail()


def _coded(code: str, detail: Callable[[], str]) -> str:
    return f"{code}: {detail()}"


class _Versioned(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def content_hash(self) -> str: ...


@dataclass(frozen=True)
class PolicyStamp:
    """Which policy made a decision: the author's version and the content hash."""

    version: str
    content_hash: str

    @classmethod
    def of(cls, loaded: _Versioned) -> PolicyStamp:
        """The stamp of a ``LoadedProgram``."""
        return cls(version=loaded.version, content_hash=loaded.content_hash)


class Rejection(StrEnum):
    """Why intake refused a referral; the HTTP API maps these to 422/409/403/429/422."""

    INVALID = "invalid"
    DUPLICATE = "duplicate"
    INELIGIBLE = "ineligible"
    VELOCITY = "velocity"
    FRAUD = "fraud"


#: When several checks block, the referrer hears about the first category in this order.
REJECTION_ORDER: tuple[Rejection, ...] = (
    Rejection.INVALID,
    Rejection.INELIGIBLE,
    Rejection.VELOCITY,
    Rejection.FRAUD,
    Rejection.DUPLICATE,
)


class Finding(NamedTuple):
    """A check that fired. ``code`` is stable (clients switch on it); ``message`` is a
    sentence for the referrer that names no other customer, owner or referrer."""

    code: str
    verdict: Verdict
    rejection: Rejection
    message: str


@dataclass(slots=True)
class CheckResult:
    """What one group of checks (eligibility, validity, fraud) found, with its trace."""

    findings: list[Finding] = field(default_factory=list)
    trace: list[Step] = field(default_factory=list)

    def fire(
        self,
        rule: str,
        verdict: Verdict,
        code: str,
        rejection: Rejection,
        message: str,
        detail: Detail,
    ) -> None:
        """Record a check that fired with ``verdict`` (allow is traced but not a finding)."""
        coded = f"{code}: {detail}" if isinstance(detail, str) else partial(_coded, code, detail)
        self.trace.append((rule, verdict.value, coded))
        if verdict is not Verdict.ALLOW:
            self.findings.append(Finding(code, verdict, rejection, message))

    def passed(self, rule: str, detail: Detail) -> None:
        """Record a check that found nothing wrong."""
        self.trace.append((rule, "pass", detail))
