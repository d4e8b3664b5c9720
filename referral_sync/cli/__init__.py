"""The ``referral-sync`` command line.

Exit codes: 0 success; 1 invalid settings, program or input; 2 usage error; 3 referral
refused by policy; 4 CRM or store unavailable."""

from __future__ import annotations

import importlib

import click

from referral_sync.cli.common import configure
from referral_sync.cli.ops_cmds import events, reconcile, worker
from referral_sync.cli.referral_cmds import demo, report, submit
from referral_sync.cli.serve_cmd import serve
from referral_sync.cli.setup_cmds import check, doctor, init, install

_OPTIONAL_COMMANDS = ("referral_sync.cli.simulate_cmd",)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="referral-sync")
@click.option("--log-level", default=None,
              help="DEBUG, INFO, WARNING or ERROR (default: settings).")
@click.pass_context
def cli(ctx: click.Context, log_level: str | None) -> None:
    """Run a B2B referral program inside Salesforce or HubSpot (or the local CRM)."""
    configure(ctx, log_level)


for command in (init, check, install, doctor, serve, worker, demo, submit, reconcile, events,
                report):
    cli.add_command(command)
for module_name in _OPTIONAL_COMMANDS:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
    else:
        cli.add_command(module.simulate)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="referral-sync")
