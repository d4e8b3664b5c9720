"""The program file: the default loads, invalid files list every problem with its key path,
`init` and `check` behave as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from referral_sync.cli import cli
from referral_sync.errors import PolicyError
from referral_sync.program.loader import default_program_text, load_program, parse_program
from referral_sync.program.schema import RewardTiming, RoutingStrategy


def test_default_program_is_the_playbook() -> None:
    loaded = parse_program(default_program_text())
    program = loaded.config.program()
    assert program.eligibility.min_account_age_days == 90
    assert program.fraud.max_per_referrer_per_day == 10
    assert program.validity.same_company.value == "review"
    assert program.validity.free_mail.value == "review"
    assert program.routing.strategy is RoutingStrategy.HYBRID
    assert program.rewards.timing is RewardTiming.TIERED
    assert [(t.name, t.per_qualified, t.per_close) for t in program.rewards.tiers] == [
        ("Bronze", 200, 1000), ("Silver", 250, 1500), ("Gold", 300, 2000)]
    assert program.rewards.referee_offer == "20% off your first year"
    assert len(loaded.content_hash) == 16


def test_hash_ignores_comments_but_not_content() -> None:
    text = default_program_text()
    same = parse_program("# a new comment\n" + text)
    changed = parse_program(text.replace("max_per_referrer_per_day: 10",
                                         "max_per_referrer_per_day: 5"))
    assert same.content_hash == parse_program(text).content_hash
    assert changed.content_hash != same.content_hash


def test_every_problem_is_listed_with_its_key_path() -> None:
    text = """
version: "1"
programs:
  - id: customer
    name: Customer
    routing:
      strategy: round_robin
      fallbak: "queue:Q"
    rewards:
      tiers: []
      currency: usd
    eligibility:
      min_account_age_days: -1
"""
    with pytest.raises(PolicyError) as info:
        parse_program(text, "p.yaml")
    problems = info.value.problems
    joined = "\n".join(problems)
    assert "programs[0].routing.strategy:" in joined
    assert "programs[0].routing.fallbak: unknown key" in joined
    assert "programs[0].rewards.tiers:" in joined
    assert "programs[0].rewards.currency:" in joined
    assert "programs[0].eligibility.min_account_age_days:" in joined
    assert len(problems) == 5


def test_condition_with_unknown_field_is_rejected_with_path() -> None:
    text = default_program_text().replace("referee.employees, op: gte",
                                          "referee.headcount, op: gte")
    with pytest.raises(PolicyError) as info:
        parse_program(text)
    assert any("routing.strategic" in p and "referee.headcount" in p
               for p in info.value.problems)


def test_territory_pointing_at_missing_pool_is_rejected() -> None:
    text = default_program_text().replace(
        "territories: []", "territories: [{name: EMEA, pool: emea_reps}]")
    with pytest.raises(PolicyError) as info:
        parse_program(text)
    assert any("emea_reps" in p for p in info.value.problems)


def test_not_yaml_names_the_line() -> None:
    with pytest.raises(PolicyError) as info:
        parse_program("version: [1\nprograms: x", "broken.yaml")
    assert "line" in info.value.problems[0]


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read program file"):
        load_program(tmp_path / "nope.yaml")


def test_init_writes_the_default_and_check_accepts_it(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "referral-sync.yaml").read_text() == default_program_text()
    again = runner.invoke(cli, ["init"])
    assert again.exit_code == 1 and "exists" in again.output
    checked = runner.invoke(cli, ["check"])
    assert checked.exit_code == 0, checked.output
    assert "version 2026.1" in checked.output


def test_check_lists_every_problem_and_exits_1(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "referral-sync.yaml").write_text(
        "version: '1'\nprograms:\n  - id: Bad Id\n    name: x\n    colour: blue\n")
    monkeypatch.setenv("REFERRAL_SYNC_CRM", "hubspot")
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1
    assert "programs[0].id" in result.output
    assert "programs[0].colour: unknown key" in result.output
    assert "HUBSPOT__ACCESS_TOKEN" in result.output
    assert "3 problem(s)" in result.output


def test_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFERRAL_SYNC_CRM", "dynamics")
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1
    assert "REFERRAL_SYNC_CRM" in result.output
