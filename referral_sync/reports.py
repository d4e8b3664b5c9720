"""Program metrics for RevOps: funnel, conversion, speed, rewards and a referrer leaderboard."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from statistics import median
from typing import Any

from jinja2 import Environment

from referral_sync.models import Referral, ReferralStatus, RewardEntry, RewardState

S = ReferralStatus
_REACHED_QUALIFIED = {S.QUALIFIED, S.OPPORTUNITY, S.CLOSED_WON, S.CLOSED_LOST}


def program_report(referrals: list[Referral], rewards: list[RewardEntry]) -> dict[str, Any]:
    """Everything ``referral-sync report`` shows, as plain data."""
    by_status = Counter(r.status.value for r in referrals)
    qualified = [r for r in referrals if r.status in _REACHED_QUALIFIED]
    won = [r for r in referrals if r.status is S.CLOSED_WON]
    hours_to_qualify = [
        (at - r.submitted_at).total_seconds() / 3600
        for r in qualified if (at := r.reached_at(S.QUALIFIED)) is not None
    ]
    earned: dict[str, Decimal] = defaultdict(Decimal)
    pending = paid = Decimal(0)
    for e in rewards:
        if e.state is RewardState.REVERSED:
            continue
        earned[e.referrer_email] += e.amount
        if e.state is RewardState.FULFILLED:
            paid += e.amount
        else:
            pending += e.amount
    names = {str(r.referrer.email): r.referrer.name or "(unnamed)" for r in referrals}
    wins = Counter(str(r.referrer.email) for r in won)
    leaders = sorted(names, key=lambda e: (-wins[e], -earned[e], names[e]))[:10]
    return {
        "referrals": len(referrals),
        "by_status": dict(sorted(by_status.items())),
        "qualification_rate": _rate(len(qualified), len(referrals)),
        "win_rate": _rate(len(won), len(qualified)),
        "revenue_influenced": str(sum((r.amount or Decimal(0) for r in won), Decimal(0))),
        "median_hours_to_qualify": round(median(hours_to_qualify), 1) if hours_to_qualify
        else None,
        "rewards_pending": str(pending),
        "rewards_fulfilled": str(paid),
        "leaderboard": [{"referrer": names[e], "won": wins[e], "earned": str(earned[e])}
                        for e in leaders],
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


_HTML = Environment(autoescape=True).from_string("""<!doctype html>
<html><head><meta charset="utf-8"><title>Referral program report</title></head><body>
<h1>Referral program report</h1>
<table>{% for k, v in summary.items() %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}
</table><h2>Leaderboard</h2><ol>{% for row in leaderboard %}
<li>{{ row.referrer }}: {{ row.won }} won, {{ row.earned }} earned</li>{% endfor %}</ol>
</body></html>""")


def render_html(report: dict[str, Any]) -> str:
    """The report as a standalone HTML page."""
    summary = {k: v for k, v in report.items() if k != "leaderboard"}
    return _HTML.render(summary=summary, leaderboard=report["leaderboard"])


def referrer_dashboard(email: str, referrals: list[Referral],
                       rewards: list[RewardEntry]) -> dict[str, Any]:
    """What one referrer sees in the portal: their referrals, rewards, revenue influenced and
    their leaderboard position (other referrers appear by first name only)."""
    email = email.lower()
    mine = [r for r in referrals if str(r.referrer.email).lower() == email]
    my_rewards = [e for e in rewards if e.referrer_email.lower() == email]
    report = program_report(referrals, rewards)
    position = next((i + 1 for i, row in enumerate(_ranking(referrals, rewards))
                     if row == email), None)
    board = [{"referrer": row["referrer"].split(" ")[0], "won": row["won"]}
             for row in report["leaderboard"]]
    return {
        "name": mine[0].referrer.name if mine else "",
        "referrals": [{"company": r.referee.company, "name": r.referee.full_name,
                       "status": r.status.value, "submitted": r.submitted_at.date().isoformat()}
                      for r in mine],
        "earned": str(sum((e.amount for e in my_rewards
                           if e.state is not RewardState.REVERSED), Decimal(0))),
        "fulfilled": str(sum((e.amount for e in my_rewards
                              if e.state is RewardState.FULFILLED), Decimal(0))),
        "pending": str(sum((e.amount for e in my_rewards
                            if e.state in (RewardState.EARNED, RewardState.APPROVED)),
                           Decimal(0))),
        "revenue_influenced": str(sum((r.amount or Decimal(0) for r in mine
                                       if r.status is S.CLOSED_WON), Decimal(0))),
        "position": position,
        "leaderboard": board,
    }


def _ranking(referrals: list[Referral], rewards: list[RewardEntry]) -> list[str]:
    wins = Counter(str(r.referrer.email).lower() for r in referrals if r.status is S.CLOSED_WON)
    earned: dict[str, Decimal] = defaultdict(Decimal)
    for e in rewards:
        if e.state is not RewardState.REVERSED:
            earned[e.referrer_email.lower()] += e.amount
    everyone = {str(r.referrer.email).lower() for r in referrals}
    return sorted(everyone, key=lambda e: (-wins[e], -earned[e], e))
