"""Referrer-facing pages: the dashboard at ``/portal/<token>`` and the personal referee landing
page at ``/r/<code>`` ("Recommended by NAME at COMPANY"), whose form submits a referral
attributed to that referrer."""

from __future__ import annotations

from flask import Blueprint, Response, abort, make_response, render_template, request
from pydantic import ValidationError

from referral_sync.errors import ConfigurationError, ReferralRejected
from referral_sync.reports import referrer_dashboard
from referral_sync.service import Submission
from webhooks import csrf
from webhooks.api import components, field_problems

blueprint = Blueprint("portal", __name__)


@blueprint.get("/portal/<token>")
def dashboard(token: str) -> str:
    """The referrer's referrals, rewards, revenue influenced and leaderboard position."""
    c = components()
    email = c.service.ctx.links.portal_referrer(token)
    if email is None:
        abort(404, "This link is not valid. Use the latest link from one of our e-mails.")
    data = referrer_dashboard(email, c.store.referrals.list(), c.store.ledger.entries())
    return render_template("portal.html", d=data, currency=c.program.config.program()
                           .rewards.currency, landing=c.service.ctx.links.landing_url(email))


def _landing_context(code: str) -> dict[str, object]:
    c = components()
    email = c.service.ctx.links.landing_referrer(code)
    if email is None:
        abort(404, "This referral link is not valid.")
    referrer = c.crm.load_referrer(email)
    if referrer is None:
        abort(404, "This referral link is no longer active.")
    return {"referrer": referrer, "email": email,
            "offer": c.program.config.program().rewards.referee_offer}


def _landing_page(status: int, context: dict[str, object], **extra: object) -> Response:
    nonce = csrf.current_nonce()
    html = render_template("landing.html", csrf_token=csrf.token_for(nonce), **context, **extra)
    return csrf.set_cookie(make_response(html, status), nonce)


@blueprint.get("/r/<code>")
def landing(code: str) -> Response:
    """The page a referrer shares: who recommends us, the offer, and a short form."""
    return _landing_page(200, _landing_context(code), values={}, errors={})


@blueprint.post("/r/<code>")
def landing_submit(code: str) -> Response:
    """The referee leaves their details; the referral is attributed to the link's owner."""
    context = _landing_context(code)
    values = {k: request.form.get(k, "").strip()
              for k in ("first_name", "last_name", "email", "company", "phone")}
    if not csrf.is_valid():
        return _landing_page(403, context, values=values, errors={},
                             message="This form expired. Please submit it again.")
    payload = {"referrer_email": context["email"], "intro_strength": "strong",
               "referee": {k: v for k, v in values.items() if v}}
    try:
        result = components().service.submit(Submission.model_validate(payload))
    except ValidationError as exc:
        errors = {p["field"].removeprefix("referee."): p["message"] for p in field_problems(exc)}
        return _landing_page(422, context, values=values, errors=errors)
    except (ReferralRejected, ConfigurationError) as exc:
        message = exc.message if isinstance(exc, ReferralRejected) else "Please try later."
        return _landing_page(getattr(exc, "http_status", 503), context, values=values,
                             errors={}, message=message)
    html = render_template("refer_done.html", referral=result.referral, owner=result.owner)
    return make_response(html, 201)
