"""The referral status machine."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from referral_sync.errors import IllegalTransition
from referral_sync.models import Referee, Referral, ReferralStatus, Referrer, path_to

S = ReferralStatus
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def make_referral() -> Referral:
    return Referral(id="ref_1", submitted_at=NOW,
                    referrer=Referrer(email="a@customer.com"),
                    referee=Referee(first_name="B", last_name="C", email="b@prospect.com",
                                    company="Prospect"))


def test_legal_steps_are_recorded_with_time_and_reason() -> None:
    referral = make_referral()
    referral.advance(S.QUALIFIED, NOW, "AE qualified")
    referral.advance(S.OPPORTUNITY, NOW)
    assert referral.status is S.OPPORTUNITY
    assert [h.status for h in referral.history] == [S.QUALIFIED, S.OPPORTUNITY]
    assert referral.reached_at(S.QUALIFIED) == NOW


@pytest.mark.parametrize("target", [S.CLOSED_WON, S.OPPORTUNITY, S.DUPLICATE, S.SUBMITTED])
def test_illegal_step_from_submitted_raises(target: ReferralStatus) -> None:
    referral = make_referral()
    with pytest.raises(IllegalTransition, match=f"submitted to {target.value}"):
        referral.advance(target, NOW)
    assert referral.status is S.SUBMITTED and referral.history == []


def test_rejected_referrals_are_final() -> None:
    with pytest.raises(IllegalTransition):
        path_to(S.DUPLICATE, S.QUALIFIED)


def test_path_walks_every_milestone() -> None:
    assert path_to(S.SUBMITTED, S.CLOSED_WON) == [S.QUALIFIED, S.OPPORTUNITY, S.CLOSED_WON]
    assert path_to(S.CLOSED_WON, S.OPPORTUNITY) == [S.OPPORTUNITY]
    assert path_to(S.QUALIFIED, S.QUALIFIED) == []
