"""The command line as a user runs it: demo, submit, report, events, install, doctor, and
`serve` as a real process whose form accepts a referral."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from click.testing import CliRunner

from referral_sync.cli import cli


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("REFERRAL_SYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at 80 columns otherwise
    return tmp_path


@pytest.fixture
def after_demo(workdir: Path) -> CliRunner:
    runner = CliRunner()
    result = runner.invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    return runner


def test_demo_tells_the_story(workdir: Path) -> None:
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Routed to" in out and "the referrer's account executive" in out
    assert "Referral Queue" in out
    assert "Reward qualified: USD 200.00" in out
    assert "Reward closed_won: USD 1,000.00" in out
    assert "is now a customer, thanks to you" in out
    assert "no budget this fiscal year" in out
    for code in ("account_status", "account_too_new", "referrer_unknown"):
        assert code in out
    assert "accepted (unexpected)" not in out
    assert (workdir / "referral-sync.db").exists() and (workdir / "referral-sync-crm.db").exists()


def test_demo_twice_starts_fresh(after_demo: CliRunner) -> None:
    again = after_demo.invoke(cli, ["demo"])
    assert again.exit_code == 0, again.output
    report = after_demo.invoke(cli, ["report", "--format", "json"])
    assert json.loads(report.stdout)["referrals"] == 4


def test_report_formats(after_demo: CliRunner, workdir: Path) -> None:
    data = json.loads(after_demo.invoke(cli, ["report", "--format", "json"]).stdout)
    assert data["by_status"]["closed_won"] == 1
    assert data["revenue_influenced"] == "48000.00"
    assert data["leaderboard"][0]["won"] == 1
    html = after_demo.invoke(cli, ["report", "--format", "html", "--out", "r.html"])
    assert html.exit_code == 0
    assert "<h1>Referral program report</h1>" in (workdir / "r.html").read_text()
    table = after_demo.invoke(cli, ["report"])
    assert "Leaderboard" in table.output


def test_submit_accepts_and_refuses_with_exit_codes(after_demo: CliRunner) -> None:
    ok = after_demo.invoke(cli, ["submit", "--referrer", "stranger@nowhere-corp.com",
                                 "--name", "Ann Lee", "--email", "ann@brightco.com",
                                 "--company", "Bright Co"])
    assert ok.exit_code == 3
    assert "referrer_unknown" in ok.output
    bad = after_demo.invoke(cli, ["submit", "--referrer", "x", "--name", "Ann Lee",
                                  "--email", "ann@brightco.com", "--company", "Bright Co"])
    assert bad.exit_code == 1
    assert "referrer_email" in bad.output


def test_events_install_and_doctor(after_demo: CliRunner) -> None:
    events = after_demo.invoke(cli, ["events"])
    assert events.exit_code == 0 and "dead 0" in events.output
    install = after_demo.invoke(cli, ["install", "--dry-run"])
    assert install.exit_code == 0 and "up to date" in install.output
    doctor = after_demo.invoke(cli, ["doctor"])
    assert doctor.exit_code == 0, doctor.output
    assert "queue:Referral Queue → Referral Queue" in doctor.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_form_accepts_a_referral_end_to_end(after_demo: CliRunner, workdir: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRAL_SYNC_")}
    log = (workdir / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "referral_sync", "serve", "--port", str(port)],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        page = _get_when_up(opener, f"{base}/refer")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token
        referrer = _demo_referrer(after_demo)
        data = urllib.parse.urlencode({
            "csrf_token": token.group(1), "referrer_email": referrer, "name": "Nora Quinn",
            "email": "nora@tallgrass-energy.com", "company": "Tallgrass Energy",
            "intro_strength": "weak"}).encode()
        with opener.open(f"{base}/refer", data=data, timeout=10) as response:
            assert response.status == 201
            assert "Thank you" in response.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    report = json.loads(after_demo.invoke(cli, ["report", "--format", "json"]).stdout)
    assert report["referrals"] == 5


def _demo_referrer(runner: CliRunner) -> str:
    from referral_sync.app import build_components
    from referral_sync.settings import Settings

    components = build_components(Settings())
    referral = components.store.referrals.list()[-1]
    components.store.close()
    return str(referral.referrer.email)


def _get_when_up(opener: urllib.request.OpenerDirector, url: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            with opener.open(url, timeout=5) as response:
                return str(response.read().decode())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_simulate_over_recorded_history(after_demo: CliRunner) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "enterprise-hybrid.yaml"
    result = after_demo.invoke(cli, ["simulate", "--policy", str(example), "--history",
                                     "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    # The demo recorded four accepted referrals; the enterprise policy routes the
    # non-strategic ones through its territory table instead of the default's queue.
    assert document["summary"]["cases"] == 4
    assert document["summary"]["changed_cases"] == 2
    moved = [c for c in document["cases"] if c["current"]["owner"] != c["new"]["owner"]]
    assert moved and all(c["current"]["owner"] == "queue:Referral Queue" for c in moved)
