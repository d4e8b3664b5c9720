"""A small world for reliability tests: components on a chosen store (SQLite or PostgreSQL),
the seeded local CRM behind a ``FaultyCrm``, an AE working leads, and the checks every
reliability test makes (one reward per milestone, no lost event, no duplicate CRM record)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from referral_sync.app import Components, build_components
from referral_sync.errors import IllegalTransition, NotFound, ReferralSyncError
from referral_sync.local import tables as t
from referral_sync.local.actions import CrmUser
from referral_sync.local.crm import LocalCrm
from referral_sync.local.seed import describe_accounts, seed
from referral_sync.models import ChangeEvent, IntroStrength, Referee, ReferralStatus
from referral_sync.program.loader import LoadedProgram, default_program_text, parse_program
from referral_sync.service import Submission
from referral_sync.settings import Settings
from referral_sync.store import JobState
from referral_sync.store.tables import inbox, jobs, reward_ledger
from referral_sync.worker import RetryPolicy
from tests.reliability.faults import FaultyCrm

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def soak_program_text() -> str:
    """The default program with the velocity limit and annual cap lifted: tests submit
    hundreds of referrals from a few seeded referrers within one (fake) day, and each
    milestone they reach must earn its reward."""
    text = default_program_text()
    for old, new in (("max_per_referrer_per_day: 10 ", "max_per_referrer_per_day: 100000 "),
                     ("annual_cap: 10000 ", "annual_cap: null ")):
        assert old in text
        text = text.replace(old, new)
    return text


def soak_program() -> LoadedProgram:
    """``soak_program_text`` loaded."""
    text = soak_program_text()
    return parse_program(text, "soak")


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    """Wired components plus handles on the CRM underneath the faults."""

    components: Components
    local: LocalCrm
    faulty: FaultyCrm
    ae: CrmUser
    referrers: list[str]
    rng: random.Random
    submitted: int = 0

    @property
    def store(self) -> object:
        return self.components.store

    def submit(self) -> str | None:
        """Submit a referral for a new company; its id, or None if the CRM failed."""
        n = self.submitted
        self.submitted += 1
        referee = Referee(first_name="Ada", last_name=f"Nguyen{n}",
                          email=f"ada{n}@newco{n}-{self.rng.randrange(10**6)}.com",
                          company=f"Newco {n} Holdings", employees=500)
        try:
            result = self.components.service.submit(Submission(
                referrer_email=self.referrers[n % len(self.referrers)], referee=referee,
                intro_strength=IntroStrength.STRONG if n % 2 else IntroStrength.WEAK))
        except ReferralSyncError:
            return None  # the submitter saw a 5xx and nothing was accepted
        return result.referral.id

    def lead_of(self, referral_id: str) -> tuple[str, str | None] | None:
        """(lead id, converted opportunity id) in the CRM, if the lead exists yet."""
        with self.local.engine.connect() as conn:
            row = conn.execute(sa.select(t.leads.c.id, t.leads.c.converted_opportunity_id)
                               .where(t.leads.c.referral_id == referral_id)).first()
        return (row.id, row.converted_opportunity_id) if row else None

    def act(self, referral_id: str, action: str) -> bool:
        """The AE does ``action`` (qualify, convert, win, lose, reopen) on the referral's
        records, if it makes sense in their current state."""
        found = self.lead_of(referral_id)
        if found is None:
            return False
        lead, opp = found
        try:
            if action == "qualify" and opp is None:
                self.ae.qualify(lead)
            elif action == "convert" and opp is None:
                self.ae.convert(lead, Decimal(20000 + self.rng.randrange(30000)))
            elif action in ("win", "lose", "reopen") and opp is not None:
                stage = {"win": "Closed Won", "lose": "Closed Lost", "reopen": "Negotiation"}
                self.ae.set_stage(opp, stage[action])
            else:
                return False
        except (IllegalTransition, NotFound):
            return False
        return True

    def next_step(self, referral_id: str, ending: str = "win") -> bool:
        """The AE takes the referral one step further: qualify, convert, then ``ending``
        (win, lose, or reopen a closed deal)."""
        found = self.lead_of(referral_id)
        if found is None:
            return False
        lead, opp = found
        if opp is None:
            with self.local.engine.connect() as conn:
                status = conn.execute(sa.select(t.leads.c.referral_status)
                                      .where(t.leads.c.id == lead)).scalar_one()
            return self.act(referral_id, "convert" if status == "qualified" else "qualify")
        with self.local.engine.connect() as conn:
            closed = conn.execute(sa.select(t.opportunities.c.is_closed)
                                  .where(t.opportunities.c.id == opp)).scalar_one()
        return self.act(referral_id, "reopen" if closed else ending)

    def changes(self) -> list[ChangeEvent]:
        """Every change the CRM has recorded, as the webhooks would deliver them."""
        return list(self.local.list_changes(EPOCH))

    def deliver(self, events: list[ChangeEvent]) -> None:
        """Hand a batch to the receiver's entry point (inbox + queue wake-up)."""
        if events:
            self.components.receive_events("local", events, b"")

    def settle(self, clock: Clock, *, rounds: int = 20) -> None:
        """Heal the CRM and let time pass until every event is processed: expired leases
        swept, retries due, missed webhooks reconciled, dead letters replayed."""
        self.faulty.rate = 0.0
        self.faulty.kill_after = None
        self.faulty.fail_with = None
        c = self.components
        for _ in range(rounds):
            clock.advance(4000)
            c.worker.sweep()
            c.service.reconcile()
            c.store.inbox.replay(None, clock())
            stats = c.worker.drain()
            counts = c.store.inbox.counts()
            if not stats.busy and counts[JobState.PENDING] == 0 and counts[JobState.LEASED] == 0:
                return
        raise AssertionError(f"jobs never settled: {c.store.inbox.counts()}")


def build_world(store_url: str, tmp_path: Path, clock: Callable[[], datetime], *, rate: float = 0.0,
                seed_value: int = 0, queue_url: str = "memory://",
                program: LoadedProgram | None = None) -> World:
    """A world on ``store_url`` with a seeded local CRM in ``tmp_path``."""
    settings = Settings(_env_file=None, database_url=store_url,  # type: ignore[call-arg]
                        queue_url=queue_url, local_crm_url=f"sqlite:///{tmp_path}/crm.db",
                        secret_key="test-secret")
    program = program or soak_program()
    local = LocalCrm.from_url(settings.local_crm_url, program.config.crm, clock)
    seed(local, now=clock())
    faulty = FaultyCrm(local, rate=rate, seed=seed_value)
    components = build_components(settings, clock=clock, crm=faulty, program=program)
    # Backoff in (fake) seconds, kept short so a test's clock need not run for hours.
    components.worker.retry = RetryPolicy(max_attempts=8, base_seconds=1, cap_seconds=60)
    components.worker.jitter = random.Random(seed_value).random
    referrers = [str(a["contact_email"]) for a in describe_accounts(local)
                 if str(a["type"]).startswith("Customer") and a["status"] is None
                 and (clock() - a["customer_since"]).days >= 90]  # type: ignore[operator]
    return World(components=components, local=local, faulty=faulty, ae=CrmUser(local),
                 referrers=referrers, rng=random.Random(seed_value))


@dataclass(frozen=True)
class Audit:
    """What the store and the CRM hold, checked for double effects and lost events."""

    inbox_keys: set[tuple[str, str]]
    inbox_rows: int
    jobs_per_event: dict[int, int]
    ledger_dupes: list[tuple[str, str]]
    crm_reward_dupes: list[tuple[str, str]]
    crm_lead_dupes: list[str]
    crm_task_dupes: list[str]
    job_states: dict[str, int]


def audit(world: World) -> Audit:
    """Read everything the invariants talk about."""
    engine = world.components.store.engine
    with engine.connect() as conn:
        rows = [(r.provider, r.event_id) for r in conn.execute(
            sa.select(inbox.c.provider, inbox.c.event_id))]
        per_event = {r.id: r.n for r in conn.execute(
            sa.select(inbox.c.id, sa.func.count(jobs.c.id).label("n"))
            .select_from(inbox.outerjoin(jobs, jobs.c.inbox_id == inbox.c.id))
            .group_by(inbox.c.id))}
        ledger = [(r.referral_id, r.milestone) for r in conn.execute(
            sa.select(reward_ledger.c.referral_id, reward_ledger.c.milestone)
            .group_by(reward_ledger.c.referral_id, reward_ledger.c.milestone)
            .having(sa.func.count() > 1))]
    with world.local.engine.connect() as conn:
        rewards = [(r.referral_id, r.milestone) for r in conn.execute(
            sa.select(t.rewards.c.referral_id, t.rewards.c.milestone)
            .group_by(t.rewards.c.referral_id, t.rewards.c.milestone)
            .having(sa.func.count() > 1))]
        leads = [r.referral_id for r in conn.execute(
            sa.select(t.leads.c.referral_id).where(t.leads.c.referral_id.is_not(None))
            .group_by(t.leads.c.referral_id).having(sa.func.count() > 1))]
        tasks = [r.key for r in conn.execute(
            sa.select(t.tasks.c.key).where(t.tasks.c.key.is_not(None))
            .group_by(t.tasks.c.key).having(sa.func.count() > 1))]
    return Audit(inbox_keys=set(rows), inbox_rows=len(rows), jobs_per_event=per_event,
                 ledger_dupes=ledger, crm_reward_dupes=rewards, crm_lead_dupes=leads,
                 crm_task_dupes=tasks, job_states=world.components.store.inbox.counts())


def assert_no_double_effect(found: Audit) -> None:
    """At most one reward per (referral, milestone), one CRM record per key, one inbox row
    per distinct event and one job per row."""
    assert found.inbox_rows == len(found.inbox_keys)
    assert found.ledger_dupes == []
    assert found.crm_reward_dupes == []
    assert found.crm_lead_dupes == []
    assert found.crm_task_dupes == []
    assert set(found.jobs_per_event.values()) <= {1}


def assert_settled_consistently(world: World) -> None:
    """After settling: each referral shows the CRM's status, and each milestone it reached
    carries exactly one reward in the ledger and in the CRM."""
    c = world.components
    with world.local.engine.connect() as conn:
        crm_rewards = {(r.referral_id, r.milestone) for r in conn.execute(
            sa.select(t.rewards.c.referral_id, t.rewards.c.milestone))}
    for referral in c.store.referrals.list():
        if referral.crm_record_id is None:
            continue
        snapshot = world.local.read_referral(referral)
        assert referral.status == snapshot.status, referral.id
        milestones = {e.milestone.value for e in c.store.ledger.entries(referral_id=referral.id)}
        reached = {s.status.value for s in referral.history}
        for milestone in ("qualified", "closed_won"):
            if milestone in reached:
                assert milestone in milestones, (referral.id, milestone)
                assert (referral.id, milestone) in crm_rewards, (referral.id, milestone)
    assert c.store.inbox.counts()[JobState.DONE] == c.store.inbox.counts()["events"]


def status_counts(world: World) -> dict[ReferralStatus, int]:
    """Referrals per status (for reports)."""
    out: dict[ReferralStatus, int] = {}
    for referral in world.components.store.referrals.list():
        out[referral.status] = out.get(referral.status, 0) + 1
    return out
