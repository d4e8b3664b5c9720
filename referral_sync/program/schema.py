"""The program file (``referral-sync.yaml``) as pydantic models.

Unknown keys are rejected everywhere (``extra="forbid"``) so a typo never silently turns a
rule off. Defaults are the seed playbook's recommended program (DESIGN.md §3).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from referral_sync.models import ReferralStatus, RewardType
from referral_sync.program.conditions import Condition


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Verdict(StrEnum):
    """What a policy check does when it fires."""

    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"


class Eligibility(_Strict):
    """Who may refer (DESIGN.md §3, "Referrer eligibility")."""

    require_paying_customer: bool = True
    min_account_age_days: int = Field(default=90, ge=0)
    excluded_statuses: list[str] = Field(
        default_factory=lambda: ["at_risk", "collections", "dispute", "trial", "free"]
    )
    require_active_usage: bool = True
    require_known_contact: bool = True


class Validity(_Strict):
    """What makes a referral count (DESIGN.md §3, "Valid referral")."""

    attribution_window_days: int = Field(default=90, ge=1)
    duplicate_lookback_days: int = Field(default=365, ge=0)
    same_company: Verdict = Verdict.REVIEW
    free_mail: Verdict = Verdict.REVIEW
    disposable_domain: Verdict = Verdict.BLOCK
    icp: Condition | None = None
    icp_miss: Verdict = Verdict.REVIEW


class Fraud(_Strict):
    """Abuse checks (DESIGN.md §3, "Fraud")."""

    self_referral: Verdict = Verdict.BLOCK
    referee_in_referrer_account: Verdict = Verdict.BLOCK
    max_per_referrer_per_day: int = Field(default=10, ge=1)
    max_per_referrer_per_month: int | None = Field(default=None, ge=1)
    repeated_referee: Verdict = Verdict.REVIEW


class RoutingStrategy(StrEnum):
    """How a referral finds its owner."""

    REFERRER_AE = "referrer_ae"
    TERRITORY = "territory"
    REFERRAL_REP = "referral_rep"
    HYBRID = "hybrid"


class PoolMethod(StrEnum):
    """How a pool picks its next member."""

    ROUND_ROBIN = "round_robin"
    WEIGHTED = "weighted"
    LOAD_BALANCED = "load_balanced"


class CapPeriod(StrEnum):
    """Window over which a member's cap counts."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class PoolMember(_Strict):
    """One rep in a pool. ``owner`` is a CRM user id, ``email:<addr>`` or ``queue:<name>``."""

    owner: str
    weight: float = Field(default=1.0, gt=0)
    cap: int | None = Field(default=None, ge=1)
    cap_period: CapPeriod = CapPeriod.MONTH
    available: bool = True
    tags: list[str] = Field(default_factory=list)


class Pool(_Strict):
    """A set of reps sharing referrals."""

    method: PoolMethod = PoolMethod.ROUND_ROBIN
    members: list[PoolMember] = Field(min_length=1)
    required_tags: list[str] = Field(default_factory=list)


class Territory(_Strict):
    """One row of the ordered territory table: the first row whose condition holds wins."""

    name: str
    when: Condition | None = None
    owner: str | None = None
    pool: str | None = None
    tags: list[str] = Field(
        default_factory=list, description="skills a pool member needs to take this row's referrals"
    )

    @model_validator(mode="after")
    def _one_target(self) -> Territory:
        if (self.owner is None) == (self.pool is None):
            raise ValueError("give exactly one of 'owner' or 'pool'")
        return self


class FirstAction(_Strict):
    """The AE's first step by intro strength."""

    strong: Literal["call", "email"] = "call"
    weak: Literal["call", "email"] = "email"


class Sla(_Strict):
    """Speed-to-lead clocks."""

    first_touch_hours: int = Field(default=24, ge=1)
    reroute_after_hours: int = Field(default=48, ge=1)


_POOL_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class Routing(_Strict):
    """Who gets a referral (DESIGN.md §3, "Routing strategies")."""

    strategy: RoutingStrategy = RoutingStrategy.HYBRID
    existing_account_match: bool = True
    account_team_role: str | None = None
    strategic: Condition | None = None
    territories: list[Territory] = Field(default_factory=list)
    pools: dict[str, Pool] = Field(default_factory=dict)
    referral_pool: str | None = None
    fallback: str = Field(
        default="queue:Referral Queue",
        description="owner of last resort: every policy must end somewhere",
    )
    first_action: FirstAction = Field(default_factory=FirstAction)
    sla: Sla = Field(default_factory=Sla)

    @model_validator(mode="after")
    def _pools_exist(self) -> Routing:
        named = [t.pool for t in self.territories if t.pool] + (
            [self.referral_pool] if self.referral_pool else []
        )
        missing = sorted({p for p in named if p not in self.pools})
        if missing:
            raise ValueError(f"unknown pool(s) {', '.join(missing)}; define them under 'pools'")
        if self.strategy is RoutingStrategy.REFERRAL_REP and not self.referral_pool:
            raise ValueError("strategy 'referral_rep' needs 'referral_pool'")
        if self.strategy is RoutingStrategy.TERRITORY and not self.territories:
            raise ValueError("strategy 'territory' needs at least one row in 'territories'")
        odd = sorted(name for name in self.pools if not _POOL_NAME.match(name))
        if odd:
            raise ValueError(f"pool names may use letters, digits, '_', '-', '.' only: {odd}")
        for name, pool in self.pools.items():
            owners = [m.owner for m in pool.members]
            if len(set(owners)) != len(owners):
                raise ValueError(f"pool {name!r} lists a member twice")
        if not self.fallback.strip():
            raise ValueError("'fallback' must name an owner or queue")
        return self


class RewardTiming(StrEnum):
    """When rewards are earned."""

    AT_QUALIFICATION = "at_qualification"
    AT_CLOSE = "at_close"
    TIERED = "tiered"


class Tier(_Strict):
    """A referrer tier by qualified-referral count, with its amounts per milestone."""

    name: str
    min_qualified: int = Field(ge=0)
    max_qualified: int | None = Field(default=None, ge=0)
    per_qualified: Decimal = Field(ge=0)
    per_close: Decimal = Field(ge=0)

    @model_validator(mode="after")
    def _range(self) -> Tier:
        if self.max_qualified is not None and self.max_qualified < self.min_qualified:
            raise ValueError("'max_qualified' is below 'min_qualified'")
        return self


def _default_tiers() -> list[Tier]:
    return [
        Tier(name="Bronze", min_qualified=1, max_qualified=2, per_qualified=Decimal(200),
             per_close=Decimal(1000)),
        Tier(name="Silver", min_qualified=3, max_qualified=5, per_qualified=Decimal(250),
             per_close=Decimal(1500)),
        Tier(name="Gold", min_qualified=6, per_qualified=Decimal(300), per_close=Decimal(2000)),
    ]


_MILESTONES: tuple[Literal["qualified", "closed_won"], ...] = ("qualified", "closed_won")


class Campaign(_Strict):
    """A time-boxed and/or segment-targeted boost."""

    name: str
    starts: date | None = None
    ends: date | None = None
    when: Condition | None = None
    multiplier: Decimal | None = Field(default=None, gt=0)
    bonus: Decimal | None = Field(default=None, ge=0)
    milestones: list[Literal["qualified", "closed_won"]] = Field(
        default_factory=lambda: list(_MILESTONES), min_length=1
    )

    @model_validator(mode="after")
    def _one_effect(self) -> Campaign:
        if self.multiplier is None and self.bonus is None:
            raise ValueError("give 'multiplier' and/or 'bonus'")
        if self.starts and self.ends and self.ends < self.starts:
            raise ValueError("'ends' is before 'starts'")
        return self


class Rewards(_Strict):
    """What referrers earn (DESIGN.md §3, "Rewards")."""

    timing: RewardTiming = RewardTiming.TIERED
    type: RewardType = RewardType.ACCOUNT_CREDIT
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    tiers: list[Tier] = Field(default_factory=_default_tiers, min_length=1)
    campaigns: list[Campaign] = Field(default_factory=list)
    campaign_overlap: Literal["best", "stack"] = "best"
    annual_cap: Decimal | None = Field(default=Decimal(10000), ge=0)
    approval_threshold: Decimal | None = Field(default=Decimal(1500), ge=0)
    hold_days: int = Field(default=90, ge=0)
    referee_offer: str = "20% off your first year"
    revenue_share_percent: Decimal = Field(default=Decimal(20), ge=0, le=100)

    @model_validator(mode="after")
    def _tiers_in_order(self) -> Rewards:
        # Tiers are looked up by qualified count, so they must not overlap.
        ordered = sorted(self.tiers, key=lambda t: t.min_qualified)
        for lower, upper in zip(ordered, ordered[1:], strict=False):
            if lower.max_qualified is None or lower.max_qualified >= upper.min_qualified:
                raise ValueError(
                    f"tiers {lower.name!r} and {upper.name!r} overlap; give "
                    f"{lower.name!r} a max_qualified below {upper.min_qualified}"
                )
        return self


class Locale(StrEnum):
    """Languages the loop-closure templates exist in."""

    EN = "en"
    MS = "ms"


_CHANNELS: tuple[Literal["email", "crm_task"], ...] = ("email", "crm_task")


class Notifications(_Strict):
    """Loop closure: how referrers hear back."""

    channels: list[Literal["email", "crm_task"]] = Field(
        default_factory=lambda: list(_CHANNELS)
    )
    default_locale: Locale = Locale.EN
    qualified_notice_hours: int = 24
    closed_notice_hours: int = 48
    credit_business_days: int = 5
    payment_days: int = 30


class ProgramKind(StrEnum):
    """Customer referral or partner program."""

    CUSTOMER = "customer"
    PARTNER = "partner"


class Program(_Strict):
    """One referral program; several can run side by side."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    kind: ProgramKind = ProgramKind.CUSTOMER
    active: bool = True
    eligibility: Eligibility = Field(default_factory=Eligibility)
    validity: Validity = Field(default_factory=Validity)
    fraud: Fraud = Field(default_factory=Fraud)
    routing: Routing = Field(default_factory=Routing)
    rewards: Rewards = Field(default_factory=Rewards)
    notifications: Notifications = Field(default_factory=Notifications)


class CrmMapping(_Strict):
    """Which CRM fields hold the facts eligibility and routing read (DESIGN.md §4)."""

    lead_source_value: str = "Referral"
    customer_type_prefix: str = "Customer"
    customer_since_field: str | None = None
    account_status_field: str | None = None
    usage_field: str | None = None
    create_deal_at_qualification: bool = True
    extra_fields: list[str] = Field(default_factory=list)
    status_values: dict[str, ReferralStatus] = Field(
        default_factory=dict,
        description="CRM status values → referral status, added to the adapter's defaults "
        "(e.g. an org's own Lead Status 'Closed - Bad Timing': nurture)",
    )


class ProgramFile(_Strict):
    """The whole ``referral-sync.yaml``."""

    version: str = Field(min_length=1)
    default_program: str | None = None
    programs: list[Program] = Field(min_length=1)
    crm: CrmMapping = Field(default_factory=CrmMapping)

    @model_validator(mode="after")
    def _unique_ids(self) -> ProgramFile:
        ids = [p.id for p in self.programs]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"program ids must be unique: {', '.join(dupes)}")
        if self.default_program and self.default_program not in ids:
            raise ValueError(f"default_program {self.default_program!r} is not a program id")
        return self

    def program(self, program_id: str | None = None) -> Program:
        """The program with ``program_id``, or the default one (the first, unless named)."""
        wanted = program_id or self.default_program or self.programs[0].id
        for program in self.programs:
            if program.id == wanted:
                return program
        raise KeyError(wanted)
