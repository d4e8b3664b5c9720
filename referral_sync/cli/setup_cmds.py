"""Set-up commands: ``init``, ``check``, ``install`` and ``doctor``."""

from __future__ import annotations

from pathlib import Path

import click

from referral_sync.cli.common import EXIT_INVALID, EXIT_UNAVAILABLE, state, with_errors
from referral_sync.errors import PolicyError, ReferralSyncError
from referral_sync.program.loader import DEFAULT_FILENAME, default_program_text, load_program
from referral_sync.service.routing import named_owners


@click.command()
@click.option("--path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(DEFAULT_FILENAME), show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path, force: bool) -> None:
    """Write the default program (the playbook's) with comments on every setting."""
    if path.exists() and not force:
        click.echo(f"error: {path} exists; use --force to overwrite it", err=True)
        raise SystemExit(EXIT_INVALID)
    path.write_text(default_program_text(), "utf-8")
    click.echo(f"wrote {path}: edit it, then run `referral-sync check`")


@click.command()
def check() -> None:
    """Validate settings and the program file; list every problem and exit 1 if any."""
    settings = state().settings
    problems = [f"settings: {p}" for p in settings.problems()]
    source = str(settings.program or DEFAULT_FILENAME)
    try:
        program = load_program(settings.program)
        source = program.source
    except PolicyError as exc:
        problems += [f"{source}: {p}" for p in exc.problems]
    if problems:
        for problem in problems:
            click.echo(f"✗ {problem}", err=True)
        click.echo(f"{len(problems)} problem(s) found", err=True)
        raise SystemExit(EXIT_INVALID)
    ids = ", ".join(p.id for p in program.config.programs)
    click.echo(f"✓ settings ok (CRM: {settings.crm.value})")
    click.echo(f"✓ {source}: version {program.version}, hash {program.content_hash}, "
               f"programs: {ids}")


@click.command()
@click.option("--dry-run", is_flag=True, help="Print the plan without changing the CRM.")
@with_errors
def install(dry_run: bool) -> None:
    """Create or update the referral fields, reward object and permissions in the CRM."""
    components = state().components()
    plan = components.crm.ensure_schema(dry_run=dry_run)
    if not plan:
        click.echo(f"{components.crm.provider}: schema is up to date; nothing to change")
        return
    verb = "would" if dry_run else "did"
    for change in plan:
        click.echo(f"{verb} {change.action}: {change.object_name}.{change.item}"
                   + (f" ({change.detail})" if change.detail else ""))
    click.echo(f"{len(plan)} change(s) {'planned' if dry_run else 'applied'}")


@click.command()
@with_errors
def doctor() -> None:
    """Check connectivity, schema drift, routing owners, store and queue health."""
    cli = state()
    components = cli.components()
    failures = 0

    def report(ok: bool, text: str) -> None:
        nonlocal failures
        failures += 0 if ok else 1
        cli.console.print(f"{'[green]✓' if ok else '[red]✗'}[/] {text}")

    try:
        components.store.ping()
        report(True, f"store reachable ({components.store.engine.dialect.name}); jobs: "
                     f"{components.store.inbox.counts()}")
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure it can find
        report(False, f"store unreachable: {type(exc).__name__}")
    try:
        assert components.queue is not None
        components.queue.ping()
        report(True, f"queue reachable ({components.settings.queue_url.split(':', 1)[0]})")
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure it can find
        report(False, f"queue unreachable: {type(exc).__name__}")
    try:
        drift = components.crm.ensure_schema(dry_run=True)
        report(not drift, f"{components.crm.provider}: schema "
                          + ("in sync" if not drift else f"drift: {len(drift)} item(s) missing; "
                             "run `referral-sync install`"))
    except ReferralSyncError as exc:
        report(False, f"{components.crm.provider}: cannot reach the CRM: {exc}")
    for program in components.program.config.programs:
        for ref in sorted(named_owners(program.routing)):
            owner = components.crm.get_owner(ref)
            report(bool(owner and owner.active),
                   f"program {program.id}: owner {ref} "
                   + (f"→ {owner.name}" if owner else "not found in the CRM"))
    if not components.program.config.crm.usage_field:
        report(True, "active-usage check skipped: no usage field mapped (crm.usage_field)")
    dead = len(components.store.inbox.dead_letters())
    report(dead == 0, f"dead letters: {dead}" + (" (see `referral-sync events`)" if dead else ""))
    if failures:
        raise SystemExit(EXIT_UNAVAILABLE)
