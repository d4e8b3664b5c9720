"""``referral-sync serve``: the HTTP app, plus (on the embedded SQLite queue) a queue consumer
in the same process, running jobs and the periodic sweeps, so one command runs everything."""

from __future__ import annotations

import logging

import click
from werkzeug.serving import make_server

from referral_sync.cli.common import state, with_errors
from webhooks import create_app

log = logging.getLogger(__name__)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--worker/--no-worker", "with_worker", default=None,
              help="Run a queue consumer in this process (default: on the embedded SQLite "
                   "queue; with Redis run `referral-sync worker` separately).")
@click.option("--reconcile-seconds", default=None, type=float,
              help="Reconcile sweep interval (default: 5 s on the local CRM, else 900 s).")
@with_errors
def serve(host: str, port: int, with_worker: bool | None,
          reconcile_seconds: float | None) -> None:
    """Serve the intake API, the referral form and the CRM webhooks."""
    cli = state()
    if reconcile_seconds is not None:
        cli.settings.worker.reconcile_seconds = reconcile_seconds
    components = cli.components()
    app = create_app(components=components)
    embedded = cli.settings.queue_url.startswith("sqlite")
    consumer = None
    if with_worker if with_worker is not None else embedded:
        # Signals stay with this (main) thread: Ctrl-C stops the server, then the consumer.
        consumer = components.consumer(signals=False)
        consumer.start()
    server = make_server(host, port, app, threaded=True)
    log.info("serving", extra={"port": server.server_port, "worker": consumer is not None})
    click.echo(f"referral-sync serving on http://{host}:{server.server_port} "
               f"(form: /refer, API: /api/v1/referrals"
               f"{'; worker in-process' if consumer else ''}); Ctrl-C to stop")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if consumer is not None:
            consumer.stop(graceful=True)
