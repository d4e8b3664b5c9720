"""Routing and simulation throughput (DESIGN.md §6: ≥ 50,000 routing decisions/s for a
100-rule policy; simulating 100,000 referrals < 10 s). A script, not a test:

    python benchmarks/bench_routing.py [--decisions 100000] [--simulate 100000] [--json]

Routing: the 100-rule policy is a hybrid policy whose territory table has 25 countries × 4
employee bands (one row each), small companies going to a weighted pool. Every decision is a
full ``RoutingDecision`` with its trace (recorded raw and written when read: the benchmark
counts the steps, a reader sees the sentences). Two variants are timed: the table as written
(indexed on country and employee band) and the same table written so that no index applies
(``matches`` and ``any`` clauses), where every row above the match is evaluated top to
bottom. One process, wall clock and CPU time.

Simulation: ``generate`` makes the history (seeded, in memory) and is not part of the bar.
The bar's number is ``one policy``: intake, routing and rewards for every generated case
under ``examples/enterprise-hybrid.yaml`` (each case's result folded into a summary, as the
CLI does), with ``simulate``'s default split over two processes on a machine with two cores
or more; the same run on one process and the diff of two policies (the example against the
default program) are printed beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from referral_sync.crm import ReferrerContext  # noqa: E402
from referral_sync.models import IntroStrength, Referee, TraceStep  # noqa: E402
from referral_sync.program.loader import LoadedProgram, parse_program  # noqa: E402
from referral_sync.program.schema import Routing  # noqa: E402
from referral_sync.rules import PolicyStamp, RoutingFacts, RoutingState, route_referral  # noqa: E402
from referral_sync.simulate import default_processes, simulate, summary_for  # noqa: E402
from referral_sync.simulate_history import generate_history  # noqa: E402

COUNTRIES = [
    "US",
    "CA",
    "GB",
    "IE",
    "DE",
    "AT",
    "CH",
    "FR",
    "NL",
    "BE",
    "SE",
    "NO",
    "DK",
    "FI",
    "ES",
    "IT",
    "PT",
    "PL",
    "CZ",
    "AU",
    "NZ",
    "SG",
    "MY",
    "JP",
    "IN",
]
BANDS = [(0, 50), (50, 200), (200, 1000), (1000, None)]


def hundred_rule_routing(indexable: bool = True) -> dict[str, Any]:
    """The routing section of a 100-row territory policy."""
    rows = []
    for country in COUNTRIES:
        for low, high in BANDS:
            if indexable:
                where: dict[str, Any] = {"field": "referee.country", "op": "eq", "value": country}
            else:
                where = {"field": "referee.country", "op": "matches", "value": f"^{country}$"}
            band: list[dict[str, Any]] = [{"field": "referee.employees", "op": "gte", "value": low}]
            if high is not None:
                band.append({"field": "referee.employees", "op": "lt", "value": high})
            # an "any" around the band hides it from the range filter in the flat variant
            clauses = [where, *band] if indexable else [where, {"any": [{"all": band}]}]
            row: dict[str, Any] = {"name": f"{country} {low}+", "when": {"all": clauses}}
            if high == 50:
                row["pool"] = "smb"
            else:
                row["owner"] = f"005{country}{low}"
            rows.append(row)
    return {
        "strategy": "hybrid",
        "strategic": {
            "any": [
                {"field": "referee.employees", "op": "gte", "value": 5000},
                {"field": "referral.intro_strength", "op": "eq", "value": "strong"},
            ]
        },
        "territories": rows,
        "pools": {
            "smb": {
                "method": "weighted",
                "members": [
                    {"owner": f"005SMB{i}", "weight": i + 1, "cap": 10_000_000} for i in range(5)
                ],
            }
        },
        "referral_pool": "smb",
    }


def sample_facts(count: int, seed: int) -> list[RoutingFacts]:
    """Referrals spread over the table: every band equally likely, 1 in 12 from a country
    the table does not cover, a third with a strong intro."""
    rnd = random.Random(seed)
    now = datetime(2026, 3, 2, tzinfo=UTC)
    referrer = ReferrerContext(contact_id="003X", email="ann@customer.com", owner_id="005AE")
    facts = []
    for i in range(count):
        low, high = rnd.choice(BANDS)
        employees = rnd.randint(low, (high or 20_000) - 1)
        country = rnd.choice(COUNTRIES + ["BR", "MX"])
        facts.append(
            RoutingFacts(
                referee=Referee.model_construct(
                    first_name="A",
                    last_name="B",
                    email=f"a{i}@example{i}.com",
                    company=f"Example {i}",
                    country=country,
                    employees=employees,
                    phone=None,
                    title=None,
                    note=None,
                    industry=None,
                ),
                intro_strength=IntroStrength.STRONG if rnd.random() < 0.33 else IntroStrength.WEAK,
                referrer=referrer,
                now=now,
            )
        )
    return facts


def _pydantic_step_us() -> float:
    start, rounds = time.perf_counter(), 20_000
    for _ in range(rounds):
        TraceStep(rule="r", outcome="o", detail="d")
    return (time.perf_counter() - start) / rounds * 1e6


def bench_routing(routing: Routing, decisions: int) -> dict[str, float]:
    """Decisions per second over ``decisions`` full decisions (counters applied)."""
    stamp, state = PolicyStamp("bench", "0" * 16), RoutingState()
    facts = sample_facts(min(decisions, 20_000), seed=1)
    route_referral(facts[0], routing, state, stamp)  # compile the policy once
    wall, cpu, steps = time.perf_counter(), time.process_time(), 0
    for i in range(decisions):
        decision = route_referral(facts[i % len(facts)], routing, state, stamp)
        steps += len(decision.trace)
        for key, inc in decision.counters.items():
            state.assigned[key] = state.assigned.get(key, 0) + inc
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "decisions": decisions,
        "per_second_wall": decisions / wall,
        "per_second_cpu": decisions / cpu,
        "us_per_decision": wall / decisions * 1e6,
        "trace_steps_per_decision": steps / decisions,
    }


def bench_simulation(count: int, new: LoadedProgram, current: LoadedProgram) -> dict[str, float]:
    """Seconds to generate ``count`` referrals and to simulate them: one policy (default
    processes, then one process) and the diff of two policies (default processes)."""
    start = time.perf_counter()
    cases = list(generate_history(count, seed=7))
    generated = time.perf_counter() - start
    timings = {
        "referrals": count,
        "generate_s": generated,
        "processes": default_processes(count),
    }
    for label, against, processes in (
        ("simulate_one_policy_s", None, None),
        ("simulate_one_policy_one_process_s", None, 1),
        ("simulate_diff_two_policies_s", current, None),
    ):
        start = time.perf_counter()
        summary = summary_for(new, against)
        for result in simulate(cases, new, against, processes=processes):
            summary.add(result)
        timings[label] = time.perf_counter() - start
    return timings


def main() -> None:
    """Run the benchmarks and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--simulate", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args()
    text = json.dumps(
        {
            "version": "bench",
            "programs": [{"id": "bench", "name": "Bench", "routing": hundred_rule_routing()}],
        }
    )
    policy = parse_program(text, "100-rule policy")
    routing = policy.config.program().routing
    flat = Routing.model_validate(hundred_rule_routing(indexable=False))
    examples = Path(__file__).resolve().parents[1] / "examples"
    from referral_sync.program.loader import load_program

    results = {
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or "?",
            "pydantic_model_us": round(_pydantic_step_us(), 2),
        },
        "routing_100_rules_indexed": bench_routing(routing, args.decisions),
        "routing_100_rules_no_index": bench_routing(flat, max(args.decisions // 5, 1)),
        "simulation": bench_simulation(
            args.simulate, load_program(examples / "enterprise-hybrid.yaml"), load_program(None)
        ),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    machine = results["machine"]
    print(
        f"python {machine['python']}; one small pydantic model takes "
        f"{machine['pydantic_model_us']} µs on this machine"
    )
    for key in ("routing_100_rules_indexed", "routing_100_rules_no_index"):
        r = results[key]
        print(
            f"{key}: {r['per_second_wall']:,.0f} decisions/s wall, "
            f"{r['per_second_cpu']:,.0f}/s CPU ({r['us_per_decision']:.1f} µs each, "
            f"{r['trace_steps_per_decision']:.1f} trace steps) over {r['decisions']:,.0f}"
        )
    s = results["simulation"]
    print(
        f"simulation of {s['referrals']:,.0f} referrals (generating them took "
        f"{s['generate_s']:.1f} s, not counted): one policy {s['simulate_one_policy_s']:.1f} s "
        f"on {s['processes']:.0f} process(es), {s['simulate_one_policy_one_process_s']:.1f} s "
        f"on one; diff of two policies {s['simulate_diff_two_policies_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
