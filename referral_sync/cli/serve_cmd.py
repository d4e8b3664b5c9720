"""``referral-sync serve``: the HTTP app, plus (on the embedded default) the worker and the
reconcile sweep in the same process, so one command runs everything."""

from __future__ import annotations

import logging
import threading

import click
from werkzeug.serving import make_server

from referral_sync.app import Components
from referral_sync.cli.common import state, with_errors
from webhooks import create_app

log = logging.getLogger(__name__)


def _reconcile_loop(components: Components, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        try:
            components.service.reconcile()
        except Exception:  # noqa: BLE001 - a failed sweep is retried on the next tick
            log.exception("reconcile sweep failed")


def start_background(components: Components, stop: threading.Event,
                     reconcile_seconds: float) -> list[threading.Thread]:
    """Start the in-process worker and reconcile threads."""
    threads = [
        threading.Thread(target=components.worker.run_forever, args=(stop,),
                         kwargs={"poll_seconds": 0.2}, name="worker", daemon=True),
        threading.Thread(target=_reconcile_loop, args=(components, stop, reconcile_seconds),
                         name="reconcile", daemon=True),
    ]
    for thread in threads:
        thread.start()
    return threads


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--worker/--no-worker", "with_worker", default=None,
              help="Run the worker in this process (default: on the embedded SQLite queue).")
@click.option("--reconcile-seconds", default=None, type=float,
              help="Reconcile sweep interval (default: 5 s on the local CRM, else 900 s).")
@with_errors
def serve(host: str, port: int, with_worker: bool | None,
          reconcile_seconds: float | None) -> None:
    """Serve the intake API, the referral form and the CRM webhooks."""
    cli = state()
    components = cli.components()
    app = create_app(components=components)
    embedded = cli.settings.queue_url.startswith("sqlite")
    stop = threading.Event()
    if with_worker if with_worker is not None else embedded:
        local = components.crm.provider == "local"
        start_background(components, stop, reconcile_seconds or (5.0 if local else 900.0))
    server = make_server(host, port, app, threaded=True)
    click.echo(f"referral-sync serving on http://{host}:{server.server_port} "
               f"(form: /refer, API: /api/v1/referrals); Ctrl-C to stop")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
