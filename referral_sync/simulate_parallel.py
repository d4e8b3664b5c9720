"""Replaying a list of cases on two processes: admission in a forked worker, placement here.

A policy's admission (intake, with its earlier-referral index and velocity counts) never
depends on placement, and placement (routing counters, rewards) needs from admission only
each case's outcome. So the worker admits the cases chunk by chunk, as fast as it can, and
streams the outcomes; this process places the admitted cases, in order, as the outcomes
arrive. Each half runs the same code over the same cases in the same order as the one-process
replay, so the results are identical: the split changes where the work runs, never what it
decides.

The worker is forked after the cases exist, so it reads them without their being copied or
pickled; per chunk it sends each case's outcome and code under each policy. When this
process stops listening (the caller stopped early, or failed) the worker's next send fails
and it ends; a failure in the worker is raised here.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
from collections.abc import Iterator, Sequence
from contextlib import suppress
from multiprocessing.connection import Connection

from referral_sync.program.loader import LoadedProgram
from referral_sync.rules import IntakeOutcome
from referral_sync.simulate_replay import (
    Admission,
    CaseKeys,
    CaseResult,
    Placement,
    PolicyResult,
    SimulationCase,
    case_result,
    policy_result,
)

#: Cases per message: large enough that pickling is a small share, small enough that the
#: placement here starts soon after the worker starts.
CHUNK = 1000
_REJECT = IntakeOutcome.REJECT
#: A case's intake outcome and code under one policy.
_Outcome = tuple[IntakeOutcome, str | None]


def simulate_in_two_processes(
    cases: Sequence[SimulationCase], new: LoadedProgram, current: LoadedProgram | None
) -> Iterator[CaseResult]:
    """``simulate(cases, new, current)`` with admission in a forked worker process."""
    policies = [new] if current is None else [new, current]
    context = multiprocessing.get_context("fork")
    here, there = context.Pipe(duplex=False)
    worker = context.Process(
        target=_admit_all, args=(cases, policies, there), name="simulate-admission", daemon=True
    )
    _start(worker)
    there.close()
    placements = [Placement(policy) for policy in policies]
    try:
        for start in range(0, len(cases), CHUNK):
            outcomes = _receive(here)
            for offset, case in enumerate(cases[start : start + CHUNK]):
                results = [
                    _result(placement, case, *policy[offset])
                    for placement, policy in zip(placements, outcomes, strict=True)
                ]
                yield case_result(case, results[0], results[1] if len(results) > 1 else None)
    finally:
        here.close()
        worker.join(timeout=5)
        if worker.is_alive():  # blocked on a send nobody reads any more
            worker.terminate()
            worker.join()


def _start(worker: multiprocessing.process.BaseProcess) -> None:
    # Objects that exist now are frozen for the worker's collector: scanning them would copy
    # every page of the cases into the worker. Unfrozen here once the worker exists (unless
    # the caller had frozen objects of its own).
    frozen = gc.get_freeze_count()
    gc.freeze()
    try:
        worker.start()
    finally:
        if not frozen:
            gc.unfreeze()


def _result(
    placement: Placement, case: SimulationCase, outcome: IntakeOutcome, code: str | None
) -> PolicyResult:
    return policy_result(outcome, code, placement.place(case) if outcome is not _REJECT else None)


def _receive(here: Connection) -> list[list[_Outcome]]:
    try:
        answer = here.recv()
    except EOFError:
        raise RuntimeError("the simulation's admission worker stopped") from None
    if isinstance(answer, BaseException):
        raise answer
    outcomes: list[list[_Outcome]] = answer
    return outcomes


def _admit_all(
    cases: Sequence[SimulationCase], policies: list[LoadedProgram], there: Connection
) -> None:
    """The worker: admit every case under each policy, a chunk per message."""
    admissions = [Admission(policy) for policy in policies]
    try:
        for start in range(0, len(cases), CHUNK):
            # only outcome and code are kept: whole decisions (traces included) for a chunk
            # would outlive the young generation and send the collector through the heap
            outcomes: list[list[_Outcome]] = [[] for _ in admissions]
            for case in cases[start : start + CHUNK]:
                keys = CaseKeys(case)
                for admission, admitted in zip(admissions, outcomes, strict=True):
                    decision = admission.admit(case, keys)
                    admitted.append((decision.outcome, decision.code))
            there.send(outcomes)
    except OSError:  # this process stopped listening: nothing left to do
        pass
    except Exception as exc:  # raised again in the main process
        with suppress(OSError):
            there.send(exc if _picklable(exc) else RuntimeError(f"admission failed: {exc!r}"))
    finally:
        there.close()


def _picklable(exc: Exception) -> bool:
    try:
        pickle.dumps(exc)
    except Exception:
        return False
    return True
