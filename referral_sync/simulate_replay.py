"""Replaying referral history under one policy, case by case (see ``simulate``).

A policy's replay has two halves with separate state: ``Admission`` (intake, with the
earlier-referral index and velocity counts) and ``Placement`` (routing counters,
qualified-referral counts and the reward ledger). Placement needs from admission only
whether each case was admitted, which is what lets ``simulate_parallel`` run the two halves
on two processes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
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
    RoutingDecision,
    StatusChange,
)
from referral_sync.program.loader import LoadedProgram
from referral_sync.program.schema import CapPeriod, Program
from referral_sync.rules import (
    IntakeDecision,
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


class CaseKeys:
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
        by_period: defaultdict[CapPeriod, list[str]] = defaultdict(list)
        for name, pool in program.routing.pools.items():
            for m in pool.members:
                by_period[m.cap_period].append(f"{name}:{m.owner}")
        self.keys_by_period = dict(by_period)
        self.labels: dict[CapPeriod, tuple[int, int, int]] = {}

    def roll_periods(self, moment: datetime) -> None:
        """Start new cap periods (day, week, month) that ``moment`` has entered."""
        counts = self.state.period_counts
        for period, keys in self.keys_by_period.items():
            label = _period_label(period, moment)
            if self.labels.get(period) != label:
                self.labels[period] = label
                for key in keys:
                    counts[key] = 0

    def apply(self, counters: dict[str, int], owner: str) -> None:
        for key, inc in counters.items():
            self.state.assigned[key] = self.state.assigned.get(key, 0) + inc
            self.state.period_counts[key] = self.state.period_counts.get(key, 0) + inc
        self.state.open_counts[owner] = self.state.open_counts.get(owner, 0) + 1


class _PolicyState:
    """What both halves of a policy's replay share: the policy and its programs."""

    def __init__(self, loaded: LoadedProgram) -> None:
        self.loaded = loaded
        self.stamp = PolicyStamp.of(loaded)
        self._programs: dict[str | None, Program] = {}

    def program(self, program_id: str | None) -> Program:
        """The case's program, or this policy's default when it has no such program."""
        program = self._programs.get(program_id)
        if program is None:
            try:
                program = self.loaded.config.program(program_id)
            except KeyError:
                program = self.loaded.config.program()
            self._programs[program_id] = program
        return program


class Admission(_PolicyState):
    """Intake under one policy, replayed in order: the earlier-referral index (first valid
    referral wins), velocity counts and who referred whom."""

    def __init__(self, loaded: LoadedProgram) -> None:
        super().__init__(loaded)
        self._earlier: dict[tuple[str, str], datetime] = {}
        self._per_day: Counter[tuple[str, int, int, int]] = Counter()
        self._per_month: Counter[tuple[str, int, int, int]] = Counter()
        self._referrers_of: defaultdict[str, set[str]] = defaultdict(set)

    def admit(self, case: SimulationCase, keys: CaseKeys) -> IntakeDecision:
        """The intake decision; an admitted case is remembered for the cases after it."""
        program = self.program(case.program)
        others = self._referrers_of.get(keys.email)
        facts = IntakeFacts.model_validate(
            {
                "referee": case.referee,
                "referrer": case.referrer,
                "referrer_email": case.referrer_email,
                "duplicates": self._duplicates(case, keys),
                "referrals_today": self._per_day.get(keys.day, 0),
                "referrals_this_month": self._per_month.get(keys.month, 0),
                "other_referrers_of_referee": len(others - {keys.referrer}) if others else 0,
                "intro_strength": case.intro_strength,
                "now": case.submitted_at,
            }
        )
        decision = evaluate_intake(facts, program, self.loaded.config.crm, self.stamp)
        if decision.outcome is not IntakeOutcome.REJECT:
            self._remember(case, keys)
        return decision

    def _duplicates(self, case: SimulationCase, keys: CaseKeys) -> list[DuplicateCandidate]:
        found = list(case.duplicates)
        earlier = self._earlier
        for matched_on, value in (
            ("email", keys.email),
            ("domain", keys.domain),
            ("company", keys.company),
        ):
            when = earlier.get((matched_on, value)) if value else None
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

    def _remember(self, case: SimulationCase, keys: CaseKeys) -> None:
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


#: Where an admitted case went: owner, strategy, reason, rewards by milestone.
Placed = tuple[str, str, str, dict[str, Decimal]]


class Placement(_PolicyState):
    """Routing and rewards under one policy for the admitted cases, replayed in order:
    routing counters, qualified-referral counts and the reward ledger."""

    def __init__(self, loaded: LoadedProgram) -> None:
        super().__init__(loaded)
        self._routing: dict[str, _Routing] = {}
        self._qualified: Counter[str] = Counter()
        self._paid: defaultdict[tuple[str, int], Decimal] = defaultdict(Decimal)
        self._referrers: dict[str, Referrer] = {}

    def place(self, case: SimulationCase) -> Placed:
        """Route an admitted case and pay what its milestones earn."""
        program = self.program(case.program)
        decision = self._route(case, program)
        return decision.owner_id, decision.strategy, decision.reason, self._reward(case, program)

    def _route(self, case: SimulationCase, program: Program) -> RoutingDecision:
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
        return decision

    def _referrer(self, email: str) -> Referrer:
        # one per referrer: the history names a few hundred referrers, many times each
        found = self._referrers.get(email)
        if found is None:
            found = Referrer.model_construct(email=email, name="", account_name=None)
            self._referrers[email] = found
        return found

    def _reward(self, case: SimulationCase, program: Program) -> dict[str, Decimal]:
        rewards: dict[str, Decimal] = {}
        if case.qualified_at is None and case.closed_won_at is None:
            return rewards  # no milestone reached, nothing earned
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
            referrer=self._referrer(case.referrer_email),
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
                rewards[milestone.value] = entry.amount
        return rewards


def policy_result(outcome: IntakeOutcome, code: str | None, placed: Placed | None) -> PolicyResult:
    """One policy's result for a case: its intake outcome and code and, if admitted, where
    it was placed."""
    owner, strategy, reason, rewards = placed or (None, None, None, {})
    return PolicyResult(
        outcome=outcome,
        code=code,
        owner=owner,
        strategy=strategy,
        reason=reason,
        rewards=rewards,
    )


def case_result(
    case: SimulationCase, new: PolicyResult, current: PolicyResult | None
) -> CaseResult:
    """A case's results under both policies, with their differences."""
    return CaseResult(
        case_id=case.id,
        submitted_at=case.submitted_at,
        company=case.referee.company,
        new=new,
        current=current,
        changes=compare(current, new) if current is not None else [],
    )


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
