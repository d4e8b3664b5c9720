"""Two ``serve`` and two ``worker`` processes sharing PostgreSQL and Redis take a burst of
referrals and a storm of duplicated CRM events (webhooks plus both workers' reconcile sweeps)
without any double effect: one CRM lead per referral, one reward per milestone, one notice
per step."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from referral_sync.clock import utc_now
from referral_sync.models import ReferralStatus
from referral_sync.program.loader import load_program
from referral_sync.store import JobState
from tests.reliability.processes import environment, processes, wait_for
from tests.reliability.world import (
    assert_no_double_effect,
    audit,
    build_world,
    soak_program_text,
)
from tests.store.backends import postgres_schema_url, redis_queue_url

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

REFERRALS = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post_referral(port: int, referrer: str, n: int) -> int:
    body = json.dumps({"referrer_email": referrer, "intro_strength": "weak", "referee": {
        "first_name": "Lee", "last_name": f"Burst{n}", "email": f"lee{n}@burst{n}-co.com",
        "company": f"Burst Company {n}", "employees": 300}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/referrals", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_two_servers_and_two_workers_take_a_burst_without_double_effects(
        tmp_path: Path) -> None:
    with ExitStack() as stack:
        url = stack.enter_context(postgres_schema_url())
        queue = stack.enter_context(redis_queue_url())
        program = tmp_path / "referral-sync.yaml"
        program.write_text(soak_program_text(), "utf-8")
        world = build_world(url, tmp_path, utc_now, queue_url=queue,
                            program=load_program(program))
        stack.callback(world.local.engine.dispose)
        stack.callback(world.components.close)
        env = environment(world.components.settings, program,
                          REFERRAL_SYNC_WORKER__RECONCILE_SECONDS="1")
        procs = stack.enter_context(processes(tmp_path))
        ports = [free_port(), free_port()]
        for n, port in enumerate(ports):
            procs.start(f"serve-{n}", ["serve", "--port", str(port)], env)
        for n in range(2):
            procs.start(f"worker-{n}", ["worker"], env)
        for n, port in enumerate(ports):
            wait_for(lambda port=port: up(port), seconds=40, what=f"serve on {port}",
                     on_timeout=lambda n=n: procs.output(f"serve-{n}"))

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(
                lambda n: post_referral(ports[n % 2], world.referrers[n % len(world.referrers)],
                                        n), range(REFERRALS)))
        assert codes == [201] * REFERRALS
        store = world.components.store
        referrals = store.referrals.list()
        assert len(referrals) == REFERRALS
        for _ in range(3):  # every AE qualifies, converts and wins, step by step
            for referral in referrals:
                assert world.next_step(referral.id)
        changes = world.changes()
        with ThreadPoolExecutor(4) as pool:  # each webhook twice, in parallel, out of order
            list(pool.map(lambda batch: world.deliver(batch),
                          [changes[i::4] for i in range(4)] + [changes[::-1][i::4]
                                                                for i in range(4)]))

        def settled() -> bool:
            counts = store.inbox.counts()
            statuses = Counter(r.status for r in store.referrals.list())
            return (statuses[ReferralStatus.CLOSED_WON] == REFERRALS
                    and counts[JobState.PENDING] == counts[JobState.LEASED] == 0)

        wait_for(settled, seconds=120, what="both workers to process the burst",
                 on_timeout=lambda: f"{store.inbox.counts()}\n{procs.output('worker-0')[-3000:]}")

        found = audit(world)
        assert_no_double_effect(found)
        assert found.job_states[JobState.DEAD] == 0
        entries = Counter((e.referral_id, e.milestone.value) for e in store.ledger.entries())
        assert sorted(set(entries.values())) == [1] and len(entries) == 2 * REFERRALS
        notices = Counter(m.template for m in store.outbox.messages())
        assert notices == {"submitted": REFERRALS, "qualified": REFERRALS,
                           "closed_won": REFERRALS}
