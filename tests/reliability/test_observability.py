"""What operators see: JSON log lines that carry the event id while a job runs and never an
e-mail address or a token; Prometheus metrics for events, the queue, leases, CRM calls and
latency; and a /readyz that checks the store and the queue."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from prometheus_client.parser import text_string_to_metric_families

from referral_sync.errors import CrmPermanentError, CrmRetryableError
from referral_sync.logs import ContextFilter, JsonFormatter
from referral_sync.queue import JobQueue
from tests.reliability.faults import WorkerKilled
from tests.reliability.world import Clock, World
from webhooks import create_app

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


@contextmanager
def json_lines() -> Iterator[list[dict[str, object]]]:
    """Capture every log line, formatted exactly as ``configure_logging`` does."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    lines: list[dict[str, object]] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        lines += [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_logs_of_a_lifecycle_carry_event_ids_and_no_personal_data(
        world: World, wclock: Clock) -> None:
    referral_id = world.submit()
    assert referral_id
    with json_lines() as outside:
        for _ in range(4):
            world.next_step(referral_id)
        world.deliver(world.changes())
    with json_lines() as during:
        world.faulty.fail_with = CrmRetryableError(
            "429 for referrer " + world.referrers[0] + " with Authorization: Bearer pat-na1-x9")
        world.components.worker.drain()
        world.faulty.fail_with = CrmPermanentError(
            f"INVALID_EMAIL_ADDRESS: {world.referrers[0]}; session_id=00D000000000062!AQ0Ab")
        wclock.advance(4000)
        world.components.worker.drain()
        world.faulty.fail_with = None
        world.components.store.inbox.replay(None, wclock())
        world.components.worker.drain()
    lines = outside + during
    assert any("lead" in str(line).lower() or "referral" in str(line) for line in lines)
    assert during, "processing logged nothing"
    for line in during:
        assert line.get("event_id"), line
        assert line.get("job_id"), line
    text = "\n".join(json.dumps(line) for line in lines)
    assert "<email>" in text  # the referrer's address was there, and was masked
    assert not EMAIL.search(text)
    assert "pat-na1-x9" not in text and "00D000000000062" not in text


def metric(body: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with exactly ``labels`` in a text exposition."""
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"{name}{labels} missing")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_metrics_count_events_failures_leases_and_crm_calls(world: World,
                                                            wclock: Clock) -> None:
    referral_id = world.submit()
    assert referral_id and world.next_step(referral_id)
    changes = world.changes()
    world.deliver(changes)
    world.deliver(changes)  # redelivered: all duplicates
    world.faulty.fail_with = CrmRetryableError("busy", http_status=429, retry_after=5)
    world.components.worker.drain()
    world.faulty.fail_with = None
    world.faulty.kill_after = 0
    wclock.advance(10)
    with pytest.raises(WorkerKilled):
        world.components.worker.run_once(limit=1)
    wclock.advance(world.components.worker.lease_seconds + 1)
    world.components.worker.sweep()
    world.components.worker.drain()
    assert world.components.queue is not None and world.components.queue.settle()
    body = create_app(components=world.components).test_client().get("/metrics").text
    distinct = len(changes)
    assert metric(body, "referral_sync_events_received_total", provider="local") == 2 * distinct
    assert metric(body, "referral_sync_events_deduplicated_total", provider="local") == distinct
    assert metric(body, "referral_sync_events_processed_total", provider="local") == distinct
    assert metric(body, "referral_sync_events_failed_total", provider="local",
                  outcome="retry") == distinct
    assert metric(body, "referral_sync_lease_expiries_total") == 1
    assert metric(body, "referral_sync_crm_errors_total", operation="read_referral",
                  kind="rate_limited") == distinct
    assert metric(body, "referral_sync_crm_calls_total", operation="read_referral") >= distinct
    assert metric(body, "referral_sync_job_seconds_count") >= 2 * distinct
    assert metric(body, "referral_sync_event_lag_seconds_count") == distinct
    assert metric(body, "referral_sync_jobs", state="done") == distinct
    assert metric(body, "referral_sync_queue_depth") >= 1  # nobody consumes this queue


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_readyz_reports_the_queue_as_well_as_the_store(world: World) -> None:
    client = create_app(components=world.components).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["status"] == "ready" and ready.json["queue"]["depth"] == 0
    world.components.queue = JobQueue.from_url("redis://127.0.0.1:9/0")  # nothing listens
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json["status"] == "unavailable" and down.json["queue"] == "ConnectionError"
    assert down.json["jobs"]["events"] == 0  # the store still answers
