"""Referral history as simulation cases: what referral-sync has recorded, with each
referrer's facts re-read from the configured CRM (for ``referral-sync simulate --history``)."""

from __future__ import annotations

from collections.abc import Iterator

from referral_sync.crm import CrmPort, ReferrerContext
from referral_sync.models import ReferralStatus
from referral_sync.simulate import SimulationCase
from referral_sync.store import Store


def recorded_history(store: Store, crm: CrmPort) -> Iterator[SimulationCase]:
    """Every recorded referral, oldest first; one CRM read per distinct referrer."""
    referrers: dict[str, ReferrerContext | None] = {}
    for referral in reversed(store.referrals.list()):
        email = str(referral.referrer.email).lower()
        if email not in referrers:
            referrers[email] = crm.load_referrer(email)
        yield SimulationCase(
            id=referral.id, program=referral.program, submitted_at=referral.submitted_at,
            referee=referral.referee, referrer_email=email, referrer=referrers[email],
            intro_strength=referral.intro_strength,
            qualified_at=referral.reached_at(ReferralStatus.QUALIFIED),
            closed_won_at=referral.reached_at(ReferralStatus.CLOSED_WON),
            deal_amount=referral.amount)
