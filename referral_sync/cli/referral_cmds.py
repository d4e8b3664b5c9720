"""Referral commands: ``demo``, ``submit`` and ``report``."""

from __future__ import annotations

import json
from pathlib import Path

import click
from pydantic import ValidationError
from rich.table import Table

from referral_sync.cli.common import EXIT_INVALID, state, with_errors
from referral_sync.demo import Demo
from referral_sync.reports import program_report, render_html
from referral_sync.service import Submission
from referral_sync.settings import CrmKind


@click.command()
@click.option("--keep", is_flag=True, help="Keep existing local data instead of starting fresh.")
@with_errors
def demo(keep: bool) -> None:
    """Seed the local CRM with a realistic data set and play a whole referral lifecycle."""
    cli = state()
    if cli.settings.crm is not CrmKind.LOCAL:
        click.echo("error: the demo runs on the local CRM (unset REFERRAL_SYNC_CRM)", err=True)
        raise SystemExit(EXIT_INVALID)
    if not keep:
        _reset_local_files(cli.settings.database_url, cli.settings.local_crm_url)
    Demo(cli.components(), cli.console).run()
    cli.console.print("\nNext: `referral-sync serve` and open "
                      f"{cli.settings.public_base_url}/refer to submit your own referral.")


def _reset_local_files(*urls: str) -> None:
    for url in urls:
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


@click.command()
@click.option("--referrer", "referrer_email", required=True, help="Referrer's e-mail.")
@click.option("--name", required=True, help="Referee's full name.")
@click.option("--email", required=True, help="Referee's work e-mail.")
@click.option("--company", required=True, help="Referee's company.")
@click.option("--phone", default=None)
@click.option("--note", default=None)
@click.option("--strong", is_flag=True, help="A warm introduction (the AE calls first).")
@click.option("--program", default=None, help="Program id (default: the file's default).")
@with_errors
def submit(referrer_email: str, name: str, email: str, company: str, phone: str | None,
           note: str | None, strong: bool, program: str | None) -> None:
    """Submit a referral as the form or API would."""
    first, _, last = name.strip().partition(" ")
    try:
        submission = Submission.model_validate({
            "referrer_email": referrer_email, "program": program,
            "intro_strength": "strong" if strong else "weak",
            "referee": {"first_name": first, "last_name": last or first, "email": email,
                        "company": company, "phone": phone, "note": note}})
    except ValidationError as exc:
        for item in exc.errors():
            click.echo(f"error: {'.'.join(map(str, item['loc']))}: {item['msg']}", err=True)
        raise SystemExit(EXIT_INVALID) from exc
    result = state().components().service.submit(submission)
    r = result.referral
    click.echo(f"accepted {r.id}: routed to {result.owner.name} — {r.routing_reason}")
    click.echo(f"CRM record: {result.record.record_id if result.record else 'pending (queued)'}")
    for reason in result.review_reasons:
        click.echo(f"review: {reason}")


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json", "html"]), default="table")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@with_errors
def report(fmt: str, out: Path | None) -> None:
    """Program metrics: funnel, conversion, rewards and the referrer leaderboard."""
    components = state().components()
    data = program_report(components.store.referrals.list(), components.store.ledger.entries())
    if fmt == "json":
        text = json.dumps(data, indent=2)
    elif fmt == "html":
        text = render_html(data)
    else:
        table = Table("metric", "value", title="Referral program")
        for key, value in data.items():
            if key != "leaderboard":
                table.add_row(key, str(value))
        state().console.print(table)
        board = Table("referrer", "won", "earned", title="Leaderboard")
        for row in data["leaderboard"]:
            board.add_row(row["referrer"], str(row["won"]), row["earned"])
        state().console.print(board)
        return
    if out:
        out.write_text(text, "utf-8")
        click.echo(f"wrote {out}")
    else:
        click.echo(text)
