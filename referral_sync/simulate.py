"""Simulate a policy against referral history: intake, routing and rewards for each case,
and the difference from the current policy (who moves to whom, outcome changes, rewards).

Pure: cases in, results out; no CRM, store or clock. Each policy replays the history in
order with its own counters (round robin, caps), earlier-referral index (first valid
referral wins), velocity counts and reward ledger (tiers, annual caps), so a change in one
decision carries through to later ones exactly as it would in production. Referrals held
for review are assumed approved (routed and rewarded); rejected ones stop at intake.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from referral_sync.crm import DuplicateCandidate, DuplicateKind, ReferrerContext
from referral_sync.models import (
    IntroStrength,
    Milestone,
    Referee,
    Referral,
    ReferralStatus,
    Referrer,
    StatusChange,
)
from referral_sync.program.loader import LoadedProgram
from referral_sync.program.schema import CapPeriod, Program
from referral_sync.rules import (
    IntakeFacts,
    IntakeOutcome,
    PolicyStamp,
    RewardFacts,
    RoutingFacts,
    RoutingState,
    evaluate_intake,
    rewards_for_milestone,
    route_referral,
)
from referral_sync.rules.duplicates import email_domain_kind, normalise_company, registrable_domain


class SimulationCase(BaseModel):
    """One historical referral: what was submitted, what the CRM knew, what happened."""

    model_config = ConfigDict(frozen=True)

    id: str
    program: str | None = None
    submitted_at: datetime
    referee: Referee
    referrer_email: str
    referrer: ReferrerContext | None = None
    intro_strength: IntroStrength = IntroStrength.WEAK
    account_match: ReferrerContext | None = None
    duplicates: list[DuplicateCandidate] = Field(default_factory=list)
    qualified_at: datetime | None = None
    closed_won_at: datetime | None = None
    deal_amount: Decimal | None = None


class PolicyResult(BaseModel):
    """What one policy decided for one case."""

    outcome: IntakeOutcome
    code: str | None = None
    owner: str | None = None
    strategy: str | None = None
    reason: str | None = None
    rewards: dict[str, Decimal] = Field(default_factory=dict)

    @property
    def reward_total(self) -> Decimal:
        """All rewards this case earned under the policy."""
        return sum(self.rewards.values(), Decimal(0))


class CaseResult(BaseModel):
    """A case under the new policy and, when compared, the current one."""

    case_id: str
    submitted_at: datetime
    company: str
    new: PolicyResult
    current: PolicyResult | None = None
    changes: list[str] = Field(default_factory=list)


def _period_label(period: CapPeriod, moment: datetime) -> tuple[int, int, int]:
    if period is CapPeriod.DAY:
        return (moment.year, moment.month, moment.day)
    if period is CapPeriod.WEEK:
        year, week, _ = moment.isocalendar()
        return (year, 0, week)
    return (moment.year, moment.month, 0)


class _Keys:
    """A case's matching keys, computed once and shared by both policies."""

    __slots__ = ("company", "day", "domain", "email", "month", "referrer")

    def __init__(self, case: SimulationCase) -> None:
        self.referrer = case.referrer_email.casefold()
        moment = case.submitted_at
        self.day = (self.referrer, moment.year, moment.month, moment.day)
        self.month = (self.referrer, moment.year, moment.month, 0)
        self.email = str(case.referee.email).casefold()
        domain = case.referee.domain
        self.domain = registrable_domain(domain) if email_domain_kind(domain) == "work" else None
        self.company = normalise_company(case.referee.company)


class _Routing:
    """Counters for one program's routing, replayed in time order."""

    def __init__(self, program: Program) -> None:
        self.state = RoutingState()
        self.periods = {
            f"{name}:{m.owner}": m.cap_period
            for name, pool in program.routing.pools.items()
            for m in pool.members
        }
        self.labels: dict[str, tuple[int, int, int]] = {}

    def roll_periods(self, moment: datetime) -> None:
        counts = self.state.period_counts
        for key, period in self.periods.items():
            label = _period_label(period, moment)
            if self.labels.get(key) != label:
                self.labels[key] = label
                counts[key] = 0

    def apply(self, counters: dict[str, int], owner: str) -> None:
        for key, inc in counters.items():
            self.state.assigned[key] = self.state.assigned.get(key, 0) + inc
            self.state.period_counts[key] = self.state.period_counts.get(key, 0) + inc
        self.state.open_counts[owner] = self.state.open_counts.get(owner, 0) + 1


class PolicyReplay:
    """Replays history under one policy, keeping the state production would keep."""

    def __init__(self, loaded: LoadedProgram) -> None:
        self.loaded = loaded
        self.stamp = PolicyStamp.of(loaded)
        self._routing: dict[str, _Routing] = {}
        self._earlier: dict[tuple[str, str], datetime] = {}
        self._per_day: Counter[tuple[str, int, int, int]] = Counter()
        self._per_month: Counter[tuple[str, int, int, int]] = Counter()
        self._referrers_of: defaultdict[str, set[str]] = defaultdict(set)
        self._qualified: Counter[str] = Counter()
        self._paid: defaultdict[tuple[str, int], Decimal] = defaultdict(Decimal)

    def program(self, program_id: str | None) -> Program:
        """The case's program, or this policy's default when it has no such program."""
        try:
            return self.loaded.config.program(program_id)
        except KeyError:
            return self.loaded.config.program()

    def _duplicates(self, case: SimulationCase, keys: _Keys) -> list[DuplicateCandidate]:
        found = list(case.duplicates)
        for matched_on, value in (
            ("email", keys.email),
            ("domain", keys.domain),
            ("company", keys.company),
        ):
            when = self._earlier.get((matched_on, value)) if value else None
            if when is not None:
                found.append(
                    DuplicateCandidate(
                        kind=DuplicateKind.EARLIER_REFERRAL,
                        matched_on=matched_on,
                        record_type="Referral",
                        record_id="history",
                        created_at=when,
                    )
                )
        return found

    def _remember(self, case: SimulationCase, keys: _Keys) -> None:
        for matched_on, value in (
            ("email", keys.email),
            ("domain", keys.domain),
            ("company", keys.company),
        ):
            if value:
                self._earlier[(matched_on, value)] = case.submitted_at
        self._per_day[keys.day] += 1
        self._per_month[keys.month] += 1
        self._referrers_of[keys.email].add(keys.referrer)

    def _intake(self, case: SimulationCase, keys: _Keys, program: Program) -> PolicyResult:
        facts = IntakeFacts(
            referee=case.referee,
            referrer=case.referrer,
            referrer_email=case.referrer_email,
            duplicates=self._duplicates(case, keys),
            referrals_today=self._per_day[keys.day],
            referrals_this_month=self._per_month[keys.month],
            other_referrers_of_referee=len(self._referrers_of[keys.email] - {keys.referrer}),
            intro_strength=case.intro_strength,
            now=case.submitted_at,
        )
        decision = evaluate_intake(facts, program, self.loaded.config.crm, self.stamp)
        return PolicyResult(outcome=decision.outcome, code=decision.code)

    def _route(self, case: SimulationCase, program: Program, result: PolicyResult) -> None:
        routing = self._routing.get(program.id)
        if routing is None:
            routing = self._routing[program.id] = _Routing(program)
        routing.roll_periods(case.submitted_at)
        facts = RoutingFacts(
            referee=case.referee,
            intro_strength=case.intro_strength,
            referrer=case.referrer,
            account_match=case.account_match,
            now=case.submitted_at,
            program_id=program.id,
        )
        decision = route_referral(facts, program.routing, routing.state, self.stamp)
        routing.apply(decision.counters, decision.owner_id)
        result.owner, result.strategy, result.reason = (
            decision.owner_id,
            decision.strategy,
            decision.reason,
        )

    def _reward(self, case: SimulationCase, program: Program, result: PolicyResult) -> None:
        referrer = case.referrer_email.casefold()
        history = (
            [StatusChange(status=ReferralStatus.QUALIFIED, at=case.qualified_at)]
            if case.qualified_at
            else []
        )
        referral = Referral(
            id=case.id,
            program=program.id,
            referee=case.referee,
            submitted_at=case.submitted_at,
            referrer=Referrer.model_construct(
                email=case.referrer_email, name="", account_name=None
            ),
            intro_strength=case.intro_strength,
            history=history,
        )
        for milestone, when in (
            (Milestone.QUALIFIED, case.qualified_at),
            (Milestone.CLOSED_WON, case.closed_won_at),
        ):
            if when is None:
                continue
            if milestone is Milestone.QUALIFIED:
                self._qualified[referrer] += 1
            facts = RewardFacts(
                referral=referral,
                milestone=milestone,
                referrer_qualified_count=max(self._qualified[referrer], 1),
                referrer_paid_this_year=self._paid[(referrer, when.year)],
                deal_amount=case.deal_amount,
                now=when,
                referrer=case.referrer,
            )
            for entry in rewards_for_milestone(facts, program, self.stamp).entries:
                self._paid[(referrer, when.year)] += entry.amount
                result.rewards[milestone.value] = entry.amount

    def run(self, case: SimulationCase, keys: _Keys) -> PolicyResult:
        """Decide one case and update this policy's replay state."""
        program = self.program(case.program)
        result = self._intake(case, keys, program)
        if result.outcome is IntakeOutcome.REJECT:
            return result
        self._remember(case, keys)
        self._route(case, program, result)
        self._reward(case, program, result)
        return result


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def compare(current: PolicyResult, new: PolicyResult) -> list[str]:
    """Readable differences between two policies' results for one case."""
    changes: list[str] = []
    if (current.outcome, current.code) != (new.outcome, new.code):
        changes.append(
            f"outcome {current.outcome.value}{f' ({current.code})' if current.code else ''} → "
            f"{new.outcome.value}{f' ({new.code})' if new.code else ''}"
        )
    if current.owner != new.owner:
        changes.append(
            f"owner {current.owner or '—'} → {new.owner or '—'}"
            + (f" ({new.reason})" if new.reason else "")
        )
    old_total, new_total = current.reward_total, new.reward_total
    if old_total != new_total:
        delta = new_total - old_total
        changes.append(
            f"reward {_money(old_total)} → {_money(new_total)} "
            f"({'+' if delta > 0 else '−'}{_money(abs(delta))})"
        )
    return changes


def simulate(
    cases: Iterable[SimulationCase],
    new: LoadedProgram,
    current: LoadedProgram | None = None,
) -> Iterator[CaseResult]:
    """Decide every case under ``new`` (and ``current``), in submission order as given."""
    replay_new = PolicyReplay(new)
    replay_current = PolicyReplay(current) if current is not None else None
    for case in cases:
        keys = _Keys(case)
        result = CaseResult(
            case_id=case.id,
            submitted_at=case.submitted_at,
            company=case.referee.company,
            new=replay_new.run(case, keys),
        )
        if replay_current is not None:
            result.current = replay_current.run(case, keys)
            result.changes = compare(result.current, result.new)
        yield result


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
