"""Simulate a policy against referral history: intake, routing and rewards for each case,
and the difference from the current policy (who moves to whom, outcome changes, rewards).

Pure: cases in, results out; no CRM, store or clock. Each policy replays the history in
order with its own counters (round robin, caps), earlier-referral index (first valid
referral wins), velocity counts and reward ledger (tiers, annual caps), so a change in one
decision carries through to later ones exactly as it would in production. Referrals held
for review are assumed approved (routed and rewarded); rejected ones stop at intake.

The replay itself is in ``simulate_replay``. A long list of cases is replayed on two
processes (``simulate_parallel``: intake in a forked worker, routing and rewards here); the
results, and their order, are the same as on one.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator

from referral_sync.program.loader import LoadedProgram
from referral_sync.rules import IntakeOutcome
from referral_sync.simulate_parallel import simulate_in_two_processes
from referral_sync.simulate_replay import (
    Admission,
    CaseKeys,
    CaseResult,
    Placement,
    PolicyResult,
    SimulationCase,
    case_result,
    compare,
    policy_result,
)
from referral_sync.simulate_summary import PolicySummary, SimulationSummary, summary_for

__all__ = [
    "PARALLEL_FROM",
    "CaseResult",
    "PolicyResult",
    "PolicySummary",
    "SimulationCase",
    "SimulationSummary",
    "compare",
    "default_processes",
    "simulate",
    "summary_for",
]

#: From this many cases on, a list is replayed on two processes (when there are two cores):
#: below it, starting the worker costs more than it saves.
PARALLEL_FROM = 2000


def simulate(
    cases: Iterable[SimulationCase],
    new: LoadedProgram,
    current: LoadedProgram | None = None,
    *,
    processes: int | None = None,
) -> Iterator[CaseResult]:
    """Decide every case under ``new`` (and ``current``), in submission order as given.

    ``processes=2`` replays a list (or tuple) of cases on two processes where ``fork``
    exists, ``1`` in this one; by default a list of at least ``PARALLEL_FROM`` cases uses two
    on a machine with two cores or more. Any other iterable is replayed as it comes, in this
    process.
    """
    if isinstance(cases, list | tuple) and _two_processes(len(cases), processes):
        yield from simulate_in_two_processes(cases, new, current)
        return
    policies = [(Admission(new), Placement(new))]
    if current is not None:
        policies.append((Admission(current), Placement(current)))
    for case in cases:
        keys = CaseKeys(case)
        results = [_replay(admission, placement, case, keys) for admission, placement in policies]
        yield case_result(case, results[0], results[1] if current is not None else None)


def _replay(
    admission: Admission, placement: Placement, case: SimulationCase, keys: CaseKeys
) -> PolicyResult:
    decision = admission.admit(case, keys)
    admitted = decision.outcome is not IntakeOutcome.REJECT
    return policy_result(
        decision.outcome, decision.code, placement.place(case) if admitted else None
    )


def default_processes(count: int) -> int:
    """How many processes ``simulate`` replays a list of ``count`` cases on by default."""
    if count >= PARALLEL_FROM and (os.cpu_count() or 1) >= 2 and _can_fork():
        return 2
    return 1


def _two_processes(count: int, processes: int | None) -> bool:
    if processes is None:
        return default_processes(count) == 2
    return processes >= 2 and _can_fork()


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()
