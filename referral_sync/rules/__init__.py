"""Pure policy: eligibility, validity, duplicates, fraud, routing and rewards.

Data in, decision with its trace out: no I/O, no clock reads, no global state. The trace
is the audit log and the simulator's output.
"""

from referral_sync.rules.conditions import condition_facts, evaluate
from referral_sync.rules.duplicates import email_domain_kind, normalise_company, registrable_domain
from referral_sync.rules.findings import PolicyStamp, Rejection
from referral_sync.rules.intake import IntakeDecision, IntakeFacts, IntakeOutcome, evaluate_intake
from referral_sync.rules.rewards import RewardDecision, RewardFacts, clawback, rewards_for_milestone
from referral_sync.rules.routing import (
    RoutingFacts,
    RoutingState,
    counter_key,
    route_referral,
    sla_reroute,
)

__all__ = [
    "IntakeDecision",
    "IntakeFacts",
    "IntakeOutcome",
    "PolicyStamp",
    "Rejection",
    "RewardDecision",
    "RewardFacts",
    "RoutingFacts",
    "RoutingState",
    "clawback",
    "counter_key",
    "condition_facts",
    "email_domain_kind",
    "evaluate",
    "evaluate_intake",
    "normalise_company",
    "registrable_domain",
    "rewards_for_milestone",
    "route_referral",
    "sla_reroute",
]
