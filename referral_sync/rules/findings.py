"""Shared vocabulary of the intake checks: the policy stamp every decision carries, the
rejection categories, and a ``Finding`` (one check that fired, with its stable code and the
sentence a referrer may read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from referral_sync.program.schema import Verdict

#: A trace step under construction: (rule, outcome, detail). The hot routing path collects
#: these and lets the decision model validate them in one go, which is several times
#: cheaper than building a ``TraceStep`` per step.
Step = tuple[str, str, str]


def as_trace(steps: list[Step]) -> list[dict[str, str]]:
    """Steps in the shape ``Decision.trace`` validates from."""
    return [{"rule": r, "outcome": o, "detail": d} for r, o, d in steps]


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


@dataclass(frozen=True)
class Finding:
    """A check that fired. ``code`` is stable (clients switch on it); ``message`` is a
    sentence for the referrer that names no other customer, owner or referrer."""

    code: str
    verdict: Verdict
    rejection: Rejection
    message: str


@dataclass
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
        detail: str,
    ) -> None:
        """Record a check that fired with ``verdict`` (allow is traced but not a finding)."""
        self.trace.append((rule, verdict.value, f"{code}: {detail}"))
        if verdict is not Verdict.ALLOW:
            self.findings.append(Finding(code, verdict, rejection, message))

    def passed(self, rule: str, detail: str) -> None:
        """Record a check that found nothing wrong."""
        self.trace.append((rule, "pass", detail))
