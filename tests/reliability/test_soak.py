"""The soak scenario of DESIGN.md §6 at a size the suite can afford (the full 10,000 events:
``python -m benchmarks.soak``): duplicates, shuffled order, CRM faults and SIGKILLed worker
processes, with nothing lost and nothing doubled."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.soak import soak

pytestmark = pytest.mark.slow


def test_a_small_soak_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    result = soak(events=300, duplicates=0.3, faults=0.2, kills=2, workers=2,
                  workdir=tmp_path, timeout=120)
    assert result.lost == 0
    assert result.duplicate_rewards == 0 and result.duplicate_crm_records == 0
    assert result.inconsistent == 0
    assert result.won_with_one_reward == result.closed_won > 0
    assert result.kills == 2 and result.retries > 0  # the faults and kills did happen
    assert result.duplicates_ignored == 90
    assert result.reconcile_found == result.undelivered  # dropped webhooks are caught
