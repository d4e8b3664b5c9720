"""The referral form: ``GET/POST /refer`` (CSRF-protected) and its confirmation page."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, make_response, render_template, request
from pydantic import ValidationError

from referral_sync.errors import ConfigurationError, ReferralRejected
from referral_sync.service import Submission
from webhooks import csrf
from webhooks.api import components, field_problems, metrics

blueprint = Blueprint("forms", __name__)

FORM_FIELDS = ("referrer_email", "name", "email", "company", "phone", "note", "intro_strength")


def _render(status: int, *, values: dict[str, str] | None = None,
            errors: dict[str, str] | None = None, message: str | None = None) -> Response:
    nonce = csrf.current_nonce()
    html = render_template(
        "refer.html", values=values or {}, errors=errors or {}, message=message,
        csrf_token=csrf.token_for(nonce),
        offer=components().program.config.program().rewards.referee_offer)
    return csrf.set_cookie(make_response(html, status), nonce)


def _submission(values: dict[str, str]) -> dict[str, Any]:
    first, _, last = values.get("name", "").strip().partition(" ")
    referee: dict[str, Any] = {
        "first_name": first, "last_name": last.strip() or first,
        "email": values.get("email", ""), "company": values.get("company", ""),
    }
    for optional in ("phone", "note"):
        if values.get(optional):
            referee[optional] = values[optional]
    return {"referrer_email": values.get("referrer_email", ""), "referee": referee,
            "intro_strength": values.get("intro_strength") or "weak"}


_FORM_NAME = {"referrer_email": "referrer_email", "referee.first_name": "name",
              "referee.last_name": "name", "referee.email": "email",
              "referee.company": "company", "referee.phone": "phone", "referee.note": "note",
              "intro_strength": "intro_strength"}


@blueprint.get("/refer")
def refer_form() -> Response:
    """The 60-second referral form."""
    return _render(200, values={"referrer_email": request.args.get("from", "")})


@blueprint.post("/refer")
def refer_submit() -> Response:
    """Handle the form; re-show it with field errors, or show the confirmation."""
    values = {k: request.form.get(k, "").strip() for k in FORM_FIELDS}
    if not csrf.is_valid():
        return _render(403, values=values,
                       message="This form expired or was not sent from our page. "
                               "Please submit it again.")
    try:
        submission = Submission.model_validate(_submission(values))
    except ValidationError as exc:
        errors = {_FORM_NAME.get(p["field"], "name"): p["message"] for p in field_problems(exc)}
        return _render(422, values=values, errors=errors)
    try:
        result = components().service.submit(submission)
    except ReferralRejected as exc:
        metrics().referrals.labels(outcome=exc.code).inc()
        return _render(exc.http_status, values=values, message=exc.message)
    except ConfigurationError:
        return _render(503, values=values,
                       message="Referrals cannot be accepted right now. Please try later.")
    metrics().referrals.labels(outcome="accepted").inc()
    html = render_template("refer_done.html", referral=result.referral, owner=result.owner)
    return make_response(html, 201)
