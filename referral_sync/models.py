"""Domain models: referrer, referee, referral and its status machine, routing decisions with
their trace, reward ledger entries, and CRM change events normalised across providers.

These are plain data; they never talk to a CRM or a database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, EmailStr, Field, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

from referral_sync.errors import IllegalTransition


class ReferralStatus(StrEnum):
    """Where a referral is in its life (DESIGN.md §3)."""

    SUBMITTED = "submitted"
    QUALIFIED = "qualified"
    OPPORTUNITY = "opportunity"
    CLOSED_WON = "closed_won"
    CLOSED_LOST = "closed_lost"
    DISQUALIFIED = "disqualified"
    NURTURE = "nurture"
    DUPLICATE = "duplicate"
    INELIGIBLE = "ineligible"


S = ReferralStatus

#: Allowed status changes. Reopening a closed deal goes back to ``opportunity``; an AE may
#: re-qualify a disqualified or nurtured referral. ``duplicate``/``ineligible`` are final.
TRANSITIONS: dict[ReferralStatus, frozenset[ReferralStatus]] = {
    S.SUBMITTED: frozenset({S.QUALIFIED, S.DISQUALIFIED, S.NURTURE}),
    S.QUALIFIED: frozenset({S.OPPORTUNITY, S.DISQUALIFIED, S.NURTURE, S.CLOSED_LOST}),
    S.OPPORTUNITY: frozenset({S.CLOSED_WON, S.CLOSED_LOST}),
    S.CLOSED_WON: frozenset({S.OPPORTUNITY, S.CLOSED_LOST}),
    S.CLOSED_LOST: frozenset({S.OPPORTUNITY}),
    S.DISQUALIFIED: frozenset({S.QUALIFIED, S.NURTURE}),
    S.NURTURE: frozenset({S.SUBMITTED, S.QUALIFIED, S.DISQUALIFIED}),
    S.DUPLICATE: frozenset(),
    S.INELIGIBLE: frozenset(),
}


def path_to(current: ReferralStatus, target: ReferralStatus) -> list[ReferralStatus]:
    """The shortest chain of legal steps from ``current`` to ``target`` (empty if equal).

    CRM events arrive out of order or skip steps (a Lead converted straight from
    "submitted" means qualified *and* opportunity); walking the chain keeps every
    intermediate milestone, so no reward or notice is skipped.

    Raises:
        IllegalTransition: when no chain exists.
    """
    if current == target:
        return []
    frontier: list[list[ReferralStatus]] = [[current]]
    seen = {current}
    while frontier:
        chain = frontier.pop(0)
        for nxt in sorted(TRANSITIONS[chain[-1]]):
            if nxt in seen:
                continue
            if nxt == target:
                return chain[1:] + [nxt]
            seen.add(nxt)
            frontier.append(chain + [nxt])
    raise IllegalTransition(f"a referral cannot go from {current.value} to {target.value}")


class IntroStrength(StrEnum):
    """How warm the referrer's introduction is; decides the AE's first action."""

    STRONG = "strong"
    WEAK = "weak"


class Referee(BaseModel):
    """The person and company being referred."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    first_name: str = Field(min_length=1, max_length=80)
    last_name: str = Field(min_length=1, max_length=80)
    email: EmailStr
    company: str = Field(min_length=1, max_length=255)
    phone: str | None = Field(default=None, max_length=40)
    title: str | None = Field(default=None, max_length=128)
    note: str | None = Field(default=None, max_length=2000)
    country: str | None = Field(default=None, max_length=80)
    industry: str | None = Field(default=None, max_length=80)
    employees: int | None = Field(default=None, ge=0)

    @property
    def full_name(self) -> str:
        """First and last name joined."""
        return f"{self.first_name} {self.last_name}"

    @property
    def domain(self) -> str:
        """The e-mail domain, lower-cased."""
        return str(self.email).rsplit("@", 1)[1].lower()


class Referrer(BaseModel):
    """The customer contact or partner making a referral, as found in the CRM."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    name: str = ""
    contact_id: str | None = None
    account_id: str | None = None
    account_name: str | None = None


class StatusChange(BaseModel):
    """One step in a referral's history."""

    status: ReferralStatus
    at: datetime
    reason: str | None = None


class Referral(BaseModel):
    """A referral as referral-sync tracks it; the CRM record is the system of record."""

    id: str
    program: str = "default"
    status: ReferralStatus = ReferralStatus.SUBMITTED
    referrer: Referrer
    referee: Referee
    intro_strength: IntroStrength = IntroStrength.WEAK
    submitted_at: datetime
    crm_record_id: str | None = None
    crm_opportunity_id: str | None = None
    owner_id: str | None = None
    #: The owner's display name when routed, for notices (saves a CRM look-up each time).
    owner_name: str | None = None
    previous_owner_ids: list[str] = Field(default_factory=list)
    #: When the current owner got the referral (SLA clocks); None means at submission.
    assigned_at: datetime | None = None
    routing_reason: str | None = None
    policy_version: str | None = None
    policy_hash: str | None = None
    first_action: str | None = None
    amount: Decimal | None = None
    disqualified_reason: str | None = None
    history: list[StatusChange] = Field(default_factory=list)

    def advance(self, target: ReferralStatus, at: datetime, reason: str | None = None) -> None:
        """Move to ``target`` in one legal step, recording when and why.

        Raises:
            IllegalTransition: if the status machine does not allow the step.
        """
        if target not in TRANSITIONS[self.status]:
            raise IllegalTransition(
                f"referral {self.id} cannot go from {self.status.value} to {target.value}"
            )
        self.status = target
        self.history.append(StatusChange(status=target, at=at, reason=reason))

    def reached_at(self, status: ReferralStatus) -> datetime | None:
        """When the referral last entered ``status``, if ever."""
        for change in reversed(self.history):
            if change.status == status:
                return change.at
        return None


class TraceStep(BaseModel):
    """One evaluated rule or clause: what was checked, what came out, why."""

    rule: str
    outcome: str
    detail: str = ""


#: A step as the rules record it: rule, outcome, and the detail or a callable writing it.
_RawStep = tuple[str, str, str | Callable[[], str]]


class Trace(Sequence[TraceStep]):
    """A decision's trace, read like a list of ``TraceStep``.

    The rules record steps raw, the detail sentence possibly as a callable that writes it;
    the ``TraceStep`` models are built and every sentence written the first time the trace
    is read (indexed, iterated, compared, dumped or pickled). Writing sentences is most of
    the cost of a routing decision and most decisions are never read (simulations, counters
    applied by the service); whoever reads one sees the same text either way.
    """

    __slots__ = ("_raw", "_steps")

    def __init__(self, steps: Iterable[TraceStep | _RawStep] = ()) -> None:
        self._raw: list[TraceStep | _RawStep] = list(steps)
        self._steps: list[TraceStep] | None = None

    @property
    def steps(self) -> list[TraceStep]:
        """The steps as ``TraceStep`` models (built on first read, then kept)."""
        if self._steps is None:
            self._steps = [
                raw
                if isinstance(raw, TraceStep)
                else TraceStep(
                    rule=raw[0],
                    outcome=raw[1],
                    detail=raw[2] if isinstance(raw[2], str) else raw[2](),
                )
                for raw in self._raw
            ]
            self._raw = []  # lets go of what the callables captured
        return self._steps

    def __len__(self) -> int:
        return len(self._raw) if self._steps is None else len(self._steps)

    @overload
    def __getitem__(self, index: int) -> TraceStep: ...

    @overload
    def __getitem__(self, index: slice) -> list[TraceStep]: ...

    def __getitem__(self, index: int | slice) -> TraceStep | list[TraceStep]:
        return self.steps[index]

    def __iter__(self) -> Iterator[TraceStep]:
        return iter(self.steps)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Trace):
            return self.steps == other.steps
        if isinstance(other, list):
            return self.steps == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable content, like a list

    def __add__(self, other: Iterable[TraceStep]) -> list[TraceStep]:
        return [*self.steps, *other]

    def __radd__(self, other: Iterable[TraceStep]) -> list[TraceStep]:
        return [*other, *self.steps]

    def __repr__(self) -> str:
        return f"Trace({self.steps!r})"

    def __reduce__(self) -> tuple[type[Trace], tuple[list[TraceStep]]]:
        return (Trace, (self.steps,))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """Validated from a list of steps (or taken as is); dumped as a list of steps."""
        as_list = handler.generate_schema(list[TraceStep])
        from_list = core_schema.no_info_after_validator_function(cls, as_list)
        return core_schema.json_or_python_schema(
            json_schema=from_list,
            python_schema=core_schema.union_schema(
                [core_schema.is_instance_schema(cls), from_list], mode="left_to_right"
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(
                _trace_steps, return_schema=as_list
            ),
        )


def _trace_steps(trace: Trace | list[TraceStep]) -> list[TraceStep]:
    # a list assigned to ``Decision.trace`` after construction is not validated into a Trace
    return trace.steps if isinstance(trace, Trace) else trace


class Decision(BaseModel):
    """Base for every rules/ output: a verdict plus the trace that explains it."""

    policy_version: str
    policy_hash: str
    trace: Trace = Field(default_factory=Trace)


class OwnerKind(StrEnum):
    """Whether a record is owned by a person or a queue."""

    USER = "user"
    QUEUE = "queue"


class RoutingDecision(Decision):
    """Who gets a referral, why, and what they should do first."""

    owner_id: str
    owner_kind: OwnerKind = OwnerKind.USER
    strategy: str
    reason: str
    first_action: str
    pool: str | None = None
    counters: dict[str, int] = Field(default_factory=dict)


class Milestone(StrEnum):
    """Points in a referral's life that can earn a reward."""

    QUALIFIED = "qualified"
    CLOSED_WON = "closed_won"


class RewardState(StrEnum):
    """Life of one reward ledger entry."""

    EARNED = "earned"
    APPROVED = "approved"
    FULFILLED = "fulfilled"
    REVERSED = "reversed"


class RewardType(StrEnum):
    """What the referrer receives."""

    ACCOUNT_CREDIT = "account_credit"
    CASH = "cash"
    GIFT_CARD = "gift_card"
    DISCOUNT = "discount"
    REVENUE_SHARE = "revenue_share"


class RewardEntry(BaseModel):
    """One line of the reward ledger, unique per ``(referral_id, milestone)``."""

    referral_id: str
    milestone: Milestone
    referrer_email: str
    program: str
    amount: Decimal
    currency: str = "USD"
    reward_type: RewardType = RewardType.ACCOUNT_CREDIT
    state: RewardState = RewardState.EARNED
    tier: str | None = None
    requires_approval: bool = False
    hold_until: datetime | None = None
    earned_at: datetime
    reasoning: list[str] = Field(default_factory=list)
    crm_id: str | None = None

    @property
    def key(self) -> str:
        """The idempotency key used for the CRM upsert and the ledger's unique constraint."""
        return f"{self.referral_id}:{self.milestone.value}"


class CrmObject(StrEnum):
    """Kinds of CRM records referral-sync reacts to."""

    LEAD = "lead"
    CONTACT = "contact"
    OPPORTUNITY = "opportunity"
    DEAL = "deal"
    ACCOUNT = "account"
    COMPANY = "company"
    OTHER = "other"


class ChangeEvent(BaseModel):
    """A CRM change, normalised across providers.

    ``event_id`` is unique per provider delivery (Outbound Message notification id, HubSpot
    ``eventId``, local change sequence) and is the inbox's idempotency key.
    ``status`` is the referral status the change implies, if any. Events arrive late and
    out of order, so processing re-reads the record unless the event is ``complete``.
    """

    provider: str
    event_id: str
    object_type: CrmObject
    record_id: str
    occurred_at: datetime
    referral_id: str | None = None
    status: ReferralStatus | None = None
    amount: Decimal | None = None
    reason: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    #: True when the event holds everything processing needs to move the referral forward to
    #: ``status`` (a Salesforce record sent whole; a HubSpot qualification, which needs no
    #: other property): a forward move is then trusted without re-reading the record
    complete: bool = False
    #: set when processing must do nothing: an echo of our own write, an event type we do
    #: not handle, another portal's event (stored for the record, then ignored)
    noop_reason: str | None = None
