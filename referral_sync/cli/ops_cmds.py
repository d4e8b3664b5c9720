"""Operations: ``worker``, ``reconcile`` and ``events`` (dead letters and replay)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from prometheus_client import start_http_server
from rich.table import Table

from referral_sync.cli.common import state, with_errors


@click.command()
@click.option("--once", is_flag=True,
              help="Sweep expired leases, process every due job, then exit (no queue needed).")
@click.option("--threads", type=int, default=None,
              help="Worker threads (default: REFERRAL_SYNC_WORKER__THREADS, 2).")
@click.option("--metrics-port", type=int, default=None,
              help="Serve Prometheus metrics of this process on this port.")
@with_errors
def worker(once: bool, threads: int | None, metrics_port: int | None) -> None:
    """Consume the task queue: process CRM events and run the periodic sweeps (reconcile,
    expired leases, SLA checks, digests) until stopped (SIGTERM finishes running jobs)."""
    components = state().components()
    if once:
        components.worker.sweep()
        stats = components.worker.drain()
        click.echo(f"processed {stats.processed}, retried {stats.retried}, dead {stats.dead}")
        return
    if metrics_port is not None and components.metrics is not None:
        start_http_server(metrics_port, addr="127.0.0.1", registry=components.metrics.registry)
    consumer = components.consumer(signals=True, threads=threads)
    click.echo(f"worker {components.worker.name} consuming {_describe(state().settings.queue_url)}"
               f" with {consumer.workers} thread(s); Ctrl-C to stop")
    consumer.run()


def _describe(url: str) -> str:
    return url.split("://", 1)[0] + " queue"


@click.command()
@click.option("--since", type=click.DateTime(), default=None,
              help="Re-read changes from this UTC time instead of the stored cursor.")
@click.option("--process/--no-process", default=True, help="Run the worker afterwards.")
@with_errors
def reconcile(since: datetime | None, process: bool) -> None:
    """Pull CRM changes since the cursor into the inbox (catches dropped webhooks)."""
    components = state().components()
    result = components.service.reconcile(since.replace(tzinfo=UTC) if since else None)
    click.echo(f"seen {result.seen} change(s), {result.stored} new; cursor {result.cursor}")
    if process:
        stats = components.worker.drain()
        click.echo(f"processed {stats.processed}, retried {stats.retried}, dead {stats.dead}")


@click.group(invoke_without_command=True)
@click.pass_context
def events(ctx: click.Context) -> None:
    """List dead letters (events that failed for good); `events replay` retries them."""
    if ctx.invoked_subcommand is not None:
        return
    components = state().components()
    dead = components.store.inbox.dead_letters()
    counts = components.store.inbox.counts()
    click.echo(f"events: {counts['events']}; jobs pending {counts['pending']}, leased "
               f"{counts['leased']}, done {counts['done']}, dead {counts['dead']}")
    if not dead:
        return
    table = Table("job", "provider", "event", "attempts", "last error", "at")
    for d in dead:
        table.add_row(str(d.id), d.provider, d.event_id, str(d.attempts),
                      (d.last_error or "")[:80], str(d.finished_at))
    state().console.print(table)


@events.command()
@click.argument("job_ids", nargs=-1, type=int)
@click.option("--queue", "via_queue", is_flag=True,
              help="Hand the jobs to the running workers instead of processing them here.")
@with_errors
def replay(job_ids: tuple[int, ...], via_queue: bool) -> None:
    """Retry dead-lettered jobs (all of them, or the given job ids)."""
    components = state().components()
    ids = components.store.inbox.replay(list(job_ids) or None, components.clock())
    click.echo(f"requeued {len(ids)} job(s)")
    if not ids:
        return
    if via_queue and components.queue is not None:
        sent = components.queue.wake(ids)
        click.echo("announced to the workers" if sent else
                   "queue unreachable: the workers' sweeper will pick them up")
        return
    stats = components.worker.run_once(job_ids=ids, limit=len(ids))
    click.echo(f"processed {stats.processed}, retried {stats.retried}, dead {stats.dead}")
