"""Real ``referral-sync`` processes for the crash and multi-node tests: environment from the
test's settings, output kept in a log file, and clean-up that only touches our own pids."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from referral_sync.settings import Settings

#: Short leases and sweeps so a killed worker's job comes back within seconds.
FAST = {"REFERRAL_SYNC_WORKER__LEASE_SECONDS": "2", "REFERRAL_SYNC_WORKER__SWEEP_SECONDS": "0.5"}


def environment(settings: Settings, program: Path, **extra: str) -> dict[str, str]:
    """The variables a child needs to share the test's store, queue and CRM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRAL_SYNC_")}
    env.update({
        "REFERRAL_SYNC_DATABASE_URL": settings.database_url,
        "REFERRAL_SYNC_QUEUE_URL": settings.queue_url,
        "REFERRAL_SYNC_LOCAL_CRM_URL": settings.local_crm_url,
        "REFERRAL_SYNC_SECRET_KEY": "test-secret",
        "REFERRAL_SYNC_PROGRAM": str(program),
        "REFERRAL_SYNC_LOG_LEVEL": "INFO",
        **FAST,
    })
    env.update(extra)
    return env


class Processes:
    """Children started by one test; all are killed (by pid) when it ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Run ``referral-sync ARGS`` with output in ``<workdir>/<name>.log``."""
        log = (self.workdir / f"{name}.log").open("ab")
        child = subprocess.Popen([sys.executable, "-m", "referral_sync", *args], env=env,
                                 cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.children.append(child)
        return child

    def output(self, name: str) -> str:
        """What the child ``name`` printed so far."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        """SIGTERM, then SIGKILL whatever is left, of our own children only."""
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=10)


@contextmanager
def processes(workdir: Path) -> Iterator[Processes]:
    """A ``Processes`` whose children cannot outlive the test."""
    group = Processes(workdir)
    try:
        yield group
    finally:
        group.stop_all()


def wait_for(check: Callable[[], bool], *, seconds: float, what: str,
             on_timeout: Callable[[], str] = lambda: "") -> None:
    """Poll ``check`` until true, or fail naming ``what`` (plus any diagnostics)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{on_timeout()}")
