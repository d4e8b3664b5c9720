"""SLA clocks: a first-touch reminder task for the owner, a re-route that never goes back to
a previous owner, adoption of an owner changed in the CRM, overdue reward notices, and the
referrers' monthly digest, each exactly once however often the check runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from referral_sync.local import tables as t
from referral_sync.service.sla import Digests, SlaChecks, add_business_days
from tests.reliability.world import Clock, World


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # SLA logic is backend-neutral; the store tests cover both


def sla(world: World) -> SlaChecks:
    service = world.components.service
    return SlaChecks(service.ctx, service.intake.router)


def tasks(world: World, like: str) -> list[tuple[str, str]]:
    with world.local.engine.connect() as conn:
        return [(r.key, r.owner_id) for r in conn.execute(
            sa.select(t.tasks.c.key, t.tasks.c.owner_id).where(t.tasks.c.key.like(like))
            .order_by(t.tasks.c.created_at))]


def user_owned(world: World) -> str:
    """A referral routed to a person (not the queue)."""
    for _ in range(20):
        referral_id = world.submit()
        assert referral_id
        referral = world.components.store.referrals.get(referral_id)
        assert referral and referral.owner_id
        owner = world.local.get_owner(referral.owner_id)
        if owner and owner.kind.value == "user":
            return referral_id
    raise AssertionError("every referral went to the queue")


def test_untouched_referral_gets_one_reminder_then_is_rerouted_once(
        world: World, wclock: Clock) -> None:
    referral_id = user_owned(world)
    first_owner = world.components.store.referrals.get(referral_id).owner_id  # type: ignore[union-attr]
    checks = sla(world)
    wclock.advance(23 * 3600)
    assert checks.run().reminded == 0
    wclock.advance(2 * 3600)
    assert checks.run().reminded == 1
    assert checks.run().reminded == 1  # the task key makes the second one a no-op
    assert tasks(world, f"{referral_id}:sla-first-touch:%") == [
        (f"{referral_id}:sla-first-touch:{first_owner}", first_owner)]
    wclock.advance(24 * 3600)
    assert checks.run().rerouted == 1
    moved = world.components.store.referrals.get(referral_id)
    assert moved is not None and moved.owner_id != first_owner
    assert moved.previous_owner_ids == [first_owner]
    assert moved.routing_reason and moved.routing_reason.startswith("SLA re-route")
    assert world.lead_of(referral_id) is not None
    with world.local.engine.connect() as conn:
        crm_owner = conn.execute(sa.select(t.leads.c.owner_id)
                                 .where(t.leads.c.referral_id == referral_id)).scalar_one()
    assert crm_owner == moved.owner_id
    assert checks.run().rerouted == 0  # the new owner's clock just started
    keys = [k for k, _ in tasks(world, f"{referral_id}:first-action%")]
    assert f"{referral_id}:first-action:{moved.owner_id}" in keys


def test_a_reroute_never_returns_to_a_previous_owner(world: World, wclock: Clock) -> None:
    referral_id = user_owned(world)
    checks = sla(world)
    owners = []
    for _ in range(6):
        wclock.advance(49 * 3600)
        checks.run()
        referral = world.components.store.referrals.get(referral_id)
        assert referral is not None
        owners.append(referral.owner_id)
        assert referral.owner_id not in referral.previous_owner_ids[:-1] or \
            world.local.get_owner(referral.owner_id).kind.value == "queue"  # type: ignore[union-attr]
    people = [o for o in owners if world.local.get_owner(o).kind.value == "user"]  # type: ignore[union-attr]
    assert len(people) == len(set(people))


def test_a_touched_referral_is_left_alone(world: World, wclock: Clock) -> None:
    referral_id = user_owned(world)
    lead = world.lead_of(referral_id)
    assert lead is not None
    world.ae.touch(lead[0])
    wclock.advance(72 * 3600)
    report = sla(world).run()
    assert (report.reminded, report.rerouted) == (0, 0)


def test_rewards_not_fulfilled_in_time_are_reported_once(world: World, wclock: Clock) -> None:
    referral_id = world.submit()
    assert referral_id and world.next_step(referral_id)
    world.deliver(world.changes())
    world.components.worker.drain()
    (entry,) = world.components.store.ledger.entries()
    due = add_business_days(entry.earned_at, 5)
    wclock.now = due
    assert sla(world).run().overdue_rewards == 0
    wclock.advance(3600)
    assert sla(world).run().overdue_rewards == 1
    sla(world).run()
    assert [k for k, _ in tasks(world, "%:overdue")] == [f"{entry.key}:overdue"]


def test_monthly_digest_is_queued_once_per_referrer_and_month(world: World,
                                                              wclock: Clock) -> None:
    referral_id = world.submit()
    assert referral_id and world.next_step(referral_id)
    world.deliver(world.changes())
    world.components.worker.drain()
    digests = Digests(world.components.service.ctx)
    assert digests.run() == 1  # October: no activity, but an unpaid reward is worth a note
    wclock.now = wclock.now.replace(month=12, day=1, hour=8)
    assert digests.run() == 1
    assert digests.run() == 0
    messages = [m for m in world.components.store.outbox.messages() if m.template == "digest"]
    november = [m for m in messages if m.key.endswith(":2026-11")]
    assert len(november) == 1
    assert "1 submitted, 1 qualified, 0 won" in november[0].body
    assert "USD 200.00" in november[0].body


def test_business_days_skip_the_weekend() -> None:
    friday = datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert add_business_days(friday, 1) == datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert add_business_days(friday, 5) == datetime(2026, 12, 4, 10, tzinfo=UTC)


def test_an_owner_changed_in_the_crm_is_adopted_and_its_clock_restarts(
        world: World, wclock: Clock) -> None:
    referral_id = user_owned(world)
    first = world.components.store.referrals.get(referral_id)
    assert first is not None
    with world.local.engine.begin() as conn:
        other = conn.execute(sa.select(t.users.c.id).where(
            t.users.c.kind == "user", t.users.c.id != first.owner_id)).scalars().first()
        conn.execute(t.leads.update().where(t.leads.c.referral_id == referral_id)
                     .values(owner_id=other))
    wclock.advance(49 * 3600)
    report = sla(world).run()
    assert (report.adopted, report.rerouted, report.reminded) == (1, 0, 0)
    adopted = world.components.store.referrals.get(referral_id)
    assert adopted is not None and adopted.owner_id == other
    assert adopted.previous_owner_ids == [first.owner_id]
    wclock.advance(3600)
    assert sla(world).run().reminded == 0  # the new owner's 24 hours have just begun
