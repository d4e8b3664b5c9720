"""Operations: ``worker``, ``reconcile`` and ``events`` (dead letters and replay)."""

from __future__ import annotations

import signal
import threading
from datetime import datetime

import click
from rich.table import Table

from referral_sync.cli.common import state, with_errors


@click.command()
@click.option("--once", is_flag=True, help="Process what is due, then exit.")
@with_errors
def worker(once: bool) -> None:
    """Process CRM events and deferred work from the inbox until stopped."""
    components = state().components()
    if once:
        stats = components.worker.drain()
        click.echo(f"processed {stats.processed}, retried {stats.retried}, dead {stats.dead}")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"worker {components.worker.name} started; Ctrl-C to stop")
    try:
        components.worker.run_forever(stop)
    except KeyboardInterrupt:
        stop.set()


@click.command()
@click.option("--since", type=click.DateTime(), default=None,
              help="Re-read changes from this UTC time instead of the stored cursor.")
@click.option("--process/--no-process", default=True, help="Run the worker afterwards.")
@with_errors
def reconcile(since: datetime | None, process: bool) -> None:
    """Pull CRM changes since the cursor into the inbox (catches dropped webhooks)."""
    from datetime import UTC

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
@with_errors
def replay(job_ids: tuple[int, ...]) -> None:
    """Retry dead-lettered jobs (all of them, or the given job ids)."""
    components = state().components()
    ids = components.store.inbox.replay(list(job_ids) or None, components.clock())
    click.echo(f"requeued {len(ids)} job(s)")
    stats = components.worker.run_once(job_ids=ids)
    click.echo(f"processed {stats.processed}, retried {stats.retried}, dead {stats.dead}")
