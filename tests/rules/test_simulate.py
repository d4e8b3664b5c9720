"""The simulator: replay semantics, the diff between two policies, CSV history, the command,
and the two-process replay (the same results as one process)."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from referral_sync.cli import cli
from referral_sync.errors import ConfigurationError
from referral_sync.models import IntroStrength
from referral_sync.program.loader import LoadedProgram, load_program
from referral_sync.rules import IntakeOutcome
from referral_sync.simulate import SimulationCase, default_processes, simulate, summary_for
from referral_sync.simulate_history import generate_history, read_history_csv
from referral_sync.simulate_parallel import CHUNK
from referral_sync.simulate_replay import Admission, CaseKeys

from .conftest import make_referee, make_referrer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
START = datetime(2026, 3, 2, 9, tzinfo=UTC)


def case(number: int, **overrides: object) -> SimulationCase:
    data: dict[str, object] = {
        "id": f"R{number}",
        "submitted_at": START + timedelta(hours=number),
        "referee": make_referee(
            email=f"p{number}@company{number}.io",
            company=f"Company {number}",
            country="US",
            employees=50,
        ),
        "referrer_email": "ann@customer-corp.com",
        "referrer": make_referrer(),
    }
    data.update(overrides)
    return SimulationCase.model_validate(data)


@pytest.fixture(scope="module")
def reps() -> LoadedProgram:
    return load_program(EXAMPLES / "referral-rep-pool.yaml")


def test_first_valid_referral_of_a_company_wins_across_the_history(
    default_loaded: LoadedProgram,
) -> None:
    first = case(1, referee=make_referee(email="a@acme.io", company="Acme Inc."))
    again = case(2, referee=make_referee(email="b@acme.io", company="ACME"))
    results = list(simulate([first, again], default_loaded))
    assert results[0].new.outcome is IntakeOutcome.ACCEPT
    assert (results[1].new.outcome, results[1].new.code) == (
        IntakeOutcome.REJECT,
        "duplicate_earlier_referral",
    )


def test_velocity_counts_earlier_cases_of_the_same_day(default_loaded: LoadedProgram) -> None:
    same_day = [case(n, submitted_at=START + timedelta(minutes=n)) for n in range(12)]
    codes = [r.new.code for r in simulate(same_day, default_loaded)]
    assert codes[:10] == [None] * 10 and codes[10:] == ["velocity_day", "velocity_day"]


def test_routing_counters_and_rewards_carry_through_the_replay(reps: LoadedProgram) -> None:
    cases = [case(n, qualified_at=START + timedelta(days=1, hours=n)) for n in range(8)]
    results = list(simulate(cases, reps))
    owners = [r.new.owner for r in results]
    assert owners.count("005AISHA") == 4 and owners.count("005BEN") == 2
    # 150 cash per qualified referral, doubled in March
    assert all(r.new.rewards == {"qualified": Decimal("300.00")} for r in results)


def test_diff_names_owner_moves_outcome_changes_and_reward_deltas(
    default_loaded: LoadedProgram, reps: LoadedProgram
) -> None:
    cases = [
        case(1, qualified_at=START + timedelta(days=2)),
        case(2, intro_strength=IntroStrength.STRONG),
        case(3, referee=make_referee(email="x@gmail.com", company="Solo")),
    ]
    summary = summary_for(reps, default_loaded)
    results = list(simulate(cases, reps, default_loaded))
    for result in results:
        summary.add(result)
    assert results[0].changes == [
        "owner queue:Referral Queue → 005AISHA (referral pool: weighted pick from pool "
        "referral_team: 005AISHA (pointer 0))",
        "reward 200.00 → 300.00 (+100.00)",
    ]
    assert results[1].changes[0].startswith("owner 005AE → 005BEN")
    assert summary.owner_moves == {
        "queue:Referral Queue → 005AISHA": 1,
        "005AE → 005BEN": 1,
        "queue:Referral Queue → 005CHEN": 1,
    }
    assert summary.reward_delta == Decimal(100)
    assert summary.changed_cases == 3


def test_same_seed_same_history() -> None:
    first = [c.model_dump() for c in generate_history(200, seed=5)]
    assert first == [c.model_dump() for c in generate_history(200, seed=5)]
    assert first != [c.model_dump() for c in generate_history(200, seed=6)]


CSV = """id,submitted_at,referee_name,referee_email,referee_company,referee_country,\
referee_employees,intro_strength,referrer_email,referrer_account,referrer_customer_since,\
referrer_owner,duplicate,qualified_at,closed_won_at,deal_amount
R1,2026-03-02T10:00:00,Dana Lee,dana@prospect.io,Prospect GmbH,DE,120,strong,\
ann@customer.com,Customer Corp,2024-01-01,005AE,,2026-03-05,2026-04-20,24000
R2,2026-03-03,Bo Chan,bo@bigco.com,BigCo,US,5000,weak,ann@customer.com,Customer Corp,\
2024-01-01,005AE,customer,,,
"""


def test_csv_history_is_read_and_simulated(default_loaded: LoadedProgram) -> None:
    cases = list(read_history_csv(CSV.splitlines(keepends=True)))
    assert [c.id for c in cases] == ["R1", "R2"]
    assert cases[0].referrer is not None and cases[0].deal_amount == Decimal(24000)
    results = list(simulate(cases, default_loaded))
    assert results[0].new.owner == "005AE"  # strong intro → strategic → referrer's AE
    assert results[0].new.rewards == {
        "qualified": Decimal("200.00"),
        "closed_won": Decimal("1000.00"),
    }
    assert results[1].new.code == "duplicate_customer"


def test_bad_csv_names_the_line() -> None:
    bad = CSV.replace("dana@prospect.io", "not-an-email")
    with pytest.raises(ConfigurationError, match="line 2"):
        list(read_history_csv(bad.splitlines(keepends=True)))
    with pytest.raises(ConfigurationError, match="referrer_email"):
        list(read_history_csv(["id,submitted_at\n"]))


def test_command_prints_a_readable_diff_over_10000_generated_referrals() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--policy",
            str(EXAMPLES / "enterprise-hybrid.yaml"),
            "--against",
            str(EXAMPLES / "referral-rep-pool.yaml"),
            "--generate",
            "10000",
            "--seed",
            "3",
            "--limit",
            "5",
        ],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "10,000 referrals" in out
    assert "Who moves to whom" in out and "Changed referrals" in out
    assert "005AISHA → " in out
    assert "referrals change; rewards" in out


def test_command_json_and_usage_errors(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text(CSV, encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "simulate",
            "--policy",
            str(EXAMPLES / "partner-program.yaml"),
            "--no-compare",
            "--csv",
            str(history),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["summary"]["cases"] == 2
    assert [c["case_id"] for c in document["cases"]] == ["R1", "R2"]
    missing = runner.invoke(cli, ["simulate", "--policy", str(history)])
    assert missing.exit_code == 2 and "--csv FILE" in missing.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: '1'\nprograms: [{id: x, name: X, routing: {strategy: nope}}]\n")
    invalid = runner.invoke(cli, ["simulate", "--policy", str(broken), "--generate", "5"])
    assert invalid.exit_code == 1
    assert "programs[0].routing.strategy" in invalid.output


@pytest.fixture(scope="module")
def history() -> list[SimulationCase]:
    # three chunks and a part of the two-process replay
    return list(generate_history(2 * CHUNK + 300, seed=11))


@pytest.mark.parametrize("against", [None, "default"])
def test_two_processes_decide_exactly_what_one_does(
    history: list[SimulationCase],
    reps: LoadedProgram,
    default_loaded: LoadedProgram,
    against: str | None,
) -> None:
    current = default_loaded if against else None
    one = [r.model_dump() for r in simulate(history, reps, current, processes=1)]
    two = [r.model_dump() for r in simulate(history, reps, current, processes=2)]
    assert two == one
    assert [r["case_id"] for r in two] == [c.id for c in history]


def test_a_stream_of_cases_is_replayed_in_this_process(
    history: list[SimulationCase], reps: LoadedProgram
) -> None:
    streamed = simulate(iter(history[:50]), reps, processes=2)
    listed = simulate(history[:50], reps, processes=1)
    assert [r.model_dump() for r in streamed] == [r.model_dump() for r in listed]
    assert default_processes(10) == 1


def test_stopping_early_ends_the_worker(history: list[SimulationCase], reps: LoadedProgram) -> None:
    results = simulate(history, reps, processes=2)
    first = [next(results) for _ in range(3)]
    results.close()
    assert [r.case_id for r in first] == [c.id for c in history[:3]]
    assert not multiprocessing.active_children()


def test_a_failure_in_the_worker_is_raised_here(
    history: list[SimulationCase], reps: LoadedProgram, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Admission, case: SimulationCase, keys: CaseKeys) -> None:
        raise ValueError(f"cannot admit {case.id}")

    monkeypatch.setattr(Admission, "admit", broken)  # the forked worker inherits it
    with pytest.raises(ValueError, match="cannot admit"):
        list(simulate(history, reps, processes=2))
    assert not multiprocessing.active_children()
