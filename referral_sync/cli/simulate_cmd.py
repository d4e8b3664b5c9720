"""``referral-sync simulate``: try a policy against history before publishing it.

The decisions come from the pure ``referral_sync.simulate``; this module only reads files,
shows progress and prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from referral_sync.cli.common import friendly_errors, state
from referral_sync.program.loader import LoadedProgram, load_program
from referral_sync.service.history import recorded_history
from referral_sync.simulate import (
    CaseResult,
    SimulationCase,
    SimulationSummary,
    summary_for,
)
from referral_sync.simulate import (
    simulate as run_cases,
)
from referral_sync.simulate_history import generate_history, read_history_csv

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_TOP = 15


#: Generated histories up to this size are held in memory (about 1 KB per case).
PARALLEL_MAX_CASES = 200_000


def _history(
    csv_path: Path | None, generate: int | None, seed: int, recorded: bool
) -> tuple[Iterable[SimulationCase], int | None]:
    if sum((csv_path is not None, generate is not None, recorded)) > 1:
        raise click.UsageError("give one of --history, --csv or --generate")
    if recorded:
        components = state().components()
        total = len(components.store.referrals.list())
        return recorded_history(components.store, components.crm), total
    if generate is not None:
        cases = generate_history(generate, seed)
        # Up to this size a list (replayed on two processes); beyond it a stream, so memory
        # stays flat however many are asked for.
        return (list(cases) if generate <= PARALLEL_MAX_CASES else cases), generate
    if csv_path is None:
        raise click.UsageError(
            "give the history: --history (recorded referrals, referrer facts from the CRM), "
            "--csv FILE (see --help for the columns) or --generate N"
        )
    with csv_path.open(encoding="utf-8", newline="") as handle:
        total = max(sum(1 for _ in handle) - 1, 0)
    return _csv_cases(csv_path), total


def _csv_cases(path: Path) -> Iterator[SimulationCase]:
    with path.open(encoding="utf-8", newline="") as handle:
        yield from read_history_csv(handle)


def run_simulation(
    cases: Iterable[SimulationCase],
    new: LoadedProgram,
    current: LoadedProgram | None,
    *,
    total: int | None = None,
    keep_all: bool = False,
    progress_console: Console | None = None,
) -> tuple[SimulationSummary, list[CaseResult]]:
    """Run the simulation with a progress bar; returns the summary and the cases to show
    (all of them with ``keep_all`` or without ``current``, else the changed ones)."""
    summary = summary_for(new, current)
    kept: list[CaseResult] = []
    columns = (TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(
        *columns, console=progress_console or Console(stderr=True), transient=True
    ) as progress:
        task = progress.add_task("simulate", total=total)
        for result in run_cases(cases, new, current):
            summary.add(result)
            if keep_all or current is None or result.changes:
                kept.append(result)
            progress.advance(task)
    return summary, kept


def _counts(title: str, data: dict[str, int], limit: int = _TOP) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("what")
    table.add_column("referrals", justify="right")
    ranked = sorted(data.items(), key=lambda item: (-item[1], item[0]))
    for key, count in ranked[:limit]:
        table.add_row(key, f"{count:,}")
    if len(ranked) > limit:
        table.add_row(f"… {len(ranked) - limit} more", "")
    return table


def _totals(summary: SimulationSummary) -> Table:
    table = Table(title=f"{summary.cases:,} referrals", title_justify="left")
    table.add_column("")
    if summary.current is not None:
        table.add_column(f"current {summary.current_policy}", justify="right")
    table.add_column(f"new {summary.new_policy}", justify="right")
    policies = [summary.current, summary.new] if summary.current else [summary.new]
    for outcome in ("accept", "review", "reject"):
        table.add_row(outcome, *(f"{p.outcomes.get(outcome, 0):,}" for p in policies))
    for milestone in ("qualified", "closed_won"):
        table.add_row(
            f"rewards {milestone}", *(f"{p.rewards.get(milestone, 0):,.2f}" for p in policies)
        )
    table.add_row("rewards total", *(f"{p.reward_total:,.2f}" for p in policies))
    return table


def _print_table(
    console: Console, summary: SimulationSummary, shown: list[CaseResult], limit: int
) -> None:
    console.print(_totals(summary))
    if summary.current is None:
        console.print(_counts("Owners", summary.new.owners))
        console.print(_counts("Rejections", summary.new.codes))
        rows = Table(title="Decisions", title_justify="left")
        for column in ("referral", "company", "outcome", "owner", "rewards"):
            rows.add_column(column)
        for result in shown[: limit or None]:
            new = result.new
            rows.add_row(
                result.case_id,
                result.company,
                new.outcome.value + (f" ({new.code})" if new.code else ""),
                new.owner or "—",
                f"{new.reward_total:,.2f}",
            )
        console.print(rows)
        return
    delta = summary.reward_delta
    console.print(
        f"[bold]{summary.changed_cases:,}[/bold] of {summary.cases:,} referrals "
        f"change; rewards {'+' if delta >= 0 else '−'}{abs(delta):,.2f}"
    )
    console.print(_counts("Outcome changes", summary.outcome_changes))
    console.print(_counts("Who moves to whom", summary.owner_moves))
    rows = Table(title="Changed referrals", title_justify="left")
    for column in ("referral", "submitted", "company", "what changes"):
        rows.add_column(column)
    for result in shown[: limit or None]:
        rows.add_row(
            result.case_id,
            f"{result.submitted_at:%Y-%m-%d}",
            result.company,
            "\n".join(result.changes),
        )
    if limit and len(shown) > limit:
        rows.add_row(f"… {len(shown) - limit:,} more", "", "", "use --limit 0 or --format json")
    console.print(rows)


def _current(against: Path | None, compare: bool) -> LoadedProgram | None:
    if not compare:
        return None
    return load_program(against if against is not None else state().settings.program)


@click.command(
    epilog="History CSV columns: id, submitted_at, referee_name, referee_email, "
    "referee_company, referrer_email (required); referee_country, "
    "referee_industry, referee_employees, intro_strength, program, referrer_name, "
    "referrer_account, referrer_domain, referrer_account_type, "
    "referrer_customer_since, referrer_status, referrer_owner, account_owner, "
    "duplicate (customer|open_pipeline), qualified_at, closed_won_at, deal_amount. "
    "Dates are ISO 8601 (UTC unless an offset is given)."
)
@click.option("--policy", "policy_path", type=_FILE, required=True, help="The program file to try.")
@click.option(
    "--against",
    "against_path",
    type=_FILE,
    default=None,
    help="The program file to compare with [default: the configured program].",
)
@click.option("--no-compare", is_flag=True, help="Only decide under --policy; no diff.")
@click.option("--history", "recorded", is_flag=True,
              help="Use the referrals recorded so far, with referrer facts from the CRM.")
@click.option("--csv", "csv_path", type=_FILE, default=None, help="History as CSV.")
@click.option(
    "--generate",
    type=click.IntRange(1, 2_000_000),
    default=None,
    help="Generate N plausible referrals instead of reading history.",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="Seed for --generate (same seed, same history).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=25,
    show_default=True,
    help="Referral rows in the table (0 = all).",
)
@click.option(
    "--all", "keep_all", is_flag=True, help="List every referral, not only the changed ones."
)
def simulate(
    policy_path: Path,
    against_path: Path | None,
    no_compare: bool,
    recorded: bool,
    csv_path: Path | None,
    generate: int | None,
    seed: int,
    fmt: str,
    limit: int,
    keep_all: bool,
) -> None:
    """Run a policy over history: intake, routing and rewards for every referral, and what
    changes compared with the current policy. Referrals held for review count as approved.
    Nothing is written anywhere."""
    with friendly_errors():
        cases, total = _history(csv_path, generate, seed, recorded)
        new = load_program(policy_path)
        current = _current(against_path, not no_compare)
        summary, shown = run_simulation(cases, new, current, total=total, keep_all=keep_all)
        if fmt == "json":
            document = {
                "summary": summary.model_dump(mode="json"),
                "cases": [r.model_dump(mode="json") for r in shown],
            }
            click.echo(json.dumps(document, indent=2))
            return
        _print_table(Console(), summary, shown, limit)
