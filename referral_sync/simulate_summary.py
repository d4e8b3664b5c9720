"""Totals of a simulation: per policy, and the difference between two policies."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from referral_sync.program.loader import LoadedProgram

if TYPE_CHECKING:
    from referral_sync.simulate import CaseResult, PolicyResult


class PolicySummary(BaseModel):
    """Totals for one policy over the whole history."""

    outcomes: dict[str, int] = Field(default_factory=dict)
    codes: dict[str, int] = Field(default_factory=dict)
    owners: dict[str, int] = Field(default_factory=dict)
    strategies: dict[str, int] = Field(default_factory=dict)
    rewards: dict[str, Decimal] = Field(default_factory=dict)

    def add(self, result: PolicyResult) -> None:
        """Count one case."""
        _bump(self.outcomes, result.outcome.value)
        if result.code:
            _bump(self.codes, result.code)
        if result.owner:
            _bump(self.owners, result.owner)
        if result.strategy:
            _bump(self.strategies, result.strategy)
        for milestone, amount in result.rewards.items():
            self.rewards[milestone] = self.rewards.get(milestone, Decimal(0)) + amount

    @property
    def reward_total(self) -> Decimal:
        """Everything paid out under the policy."""
        return sum(self.rewards.values(), Decimal(0))


class SimulationSummary(BaseModel):
    """The diff of two policies over one history (or one policy's totals)."""

    cases: int = 0
    new_policy: str = ""
    current_policy: str | None = None
    new: PolicySummary = Field(default_factory=PolicySummary)
    current: PolicySummary | None = None
    changed_cases: int = 0
    outcome_changes: dict[str, int] = Field(default_factory=dict)
    owner_moves: dict[str, int] = Field(default_factory=dict)
    reward_delta: Decimal = Decimal(0)

    def add(self, result: CaseResult) -> None:
        """Count one case's results and differences."""
        self.cases += 1
        self.new.add(result.new)
        old = result.current
        if old is None:
            return
        if self.current is None:
            self.current = PolicySummary()
        self.current.add(old)
        self.changed_cases += bool(result.changes)
        if old.outcome is not result.new.outcome:
            _bump(self.outcome_changes, f"{old.outcome.value} → {result.new.outcome.value}")
        if old.owner != result.new.owner:
            _bump(self.owner_moves, f"{old.owner or '—'} → {result.new.owner or '—'}")
        self.reward_delta += result.new.reward_total - old.reward_total


def _bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def summary_for(new: LoadedProgram, current: LoadedProgram | None) -> SimulationSummary:
    """An empty summary labelled with the policies' versions and hashes."""
    return SimulationSummary(
        new_policy=f"{new.version} ({new.content_hash})",
        current_policy=f"{current.version} ({current.content_hash})" if current else None,
    )
