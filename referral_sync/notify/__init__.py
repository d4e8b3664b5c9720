"""Loop closure: render the referrer's messages (English or Malay), put them in the outbox
exactly once, log them as a CRM activity, and deliver e-mail over SMTP when configured."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined

from referral_sync.clock import Clock
from referral_sync.crm import CrmTask
from referral_sync.program.schema import Locale, Notifications
from referral_sync.settings import SmtpSettings
from referral_sync.store import OutboxMessage, Store

log = logging.getLogger(__name__)

TEMPLATES = ("submitted", "qualified", "disqualified", "nurture", "closed_won", "closed_lost",
             "reward_fulfilled", "digest")


class TemplateRenderer:
    """Renders ``notify/templates/<locale>/<name>.txt``: first line subject, rest body."""

    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("referral_sync.notify", "templates"),
            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False,
        )

    def render(self, name: str, locale: Locale, context: dict[str, Any]) -> tuple[str, str]:
        """(subject, body) of template ``name`` in ``locale``."""
        text = self._env.get_template(f"{locale.value}/{name}.txt").render(**context)
        subject, _, body = text.partition("\n")
        return subject.strip(), body.strip() + "\n"


class Notifier:
    """Queues referrer messages in the outbox (once per key) and prepares the CRM activity
    that shows the AE what the referrer was told (the caller writes it with its other
    changes, so a notice costs no API call of its own)."""

    def __init__(self, store: Store, clock: Clock,
                 renderer: TemplateRenderer | None = None) -> None:
        self.store = store
        self.clock = clock
        self.renderer = renderer or TemplateRenderer()

    def notify(self, *, key: str, template: str, recipient: str, referral_id: str,
               policy: Notifications, context: dict[str, Any], record_id: str | None,
               owner_id: str | None, locale: Locale | None = None) -> CrmTask | None:
        """Queue one message (a no-op if ``key`` was queued before); return the CRM activity
        to log, if the program logs notices in the CRM."""
        chosen = locale or policy.default_locale
        subject, body = self.renderer.render(template, chosen, context)
        queued = self.store.outbox.add(OutboxMessage(
            key=key, referral_id=referral_id, channel="email", template=template,
            locale=chosen.value, recipient=recipient, subject=subject, body=body,
            state="pending" if "email" in policy.channels else "logged",
        ), self.clock())
        if queued:
            log.info("referrer notice queued", extra={"referral_id": referral_id,
                                                      "template": template})
        # No ``record_id`` yet: the activity goes on the record being created with it.
        if "crm_task" not in policy.channels or not owner_id:
            return None
        return CrmTask(subject=f"Referrer notified: {subject}", owner_id=owner_id,
                       what_id=record_id, description=body, kind="activity",
                       key=f"notice:{key}")


class SmtpSender:
    """Delivers pending outbox e-mail; without an SMTP URL messages stay in the outbox."""

    def __init__(self, store: Store, settings: SmtpSettings, clock: Clock) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    def deliver_pending(self) -> int:
        """Send every pending e-mail; returns how many were sent."""
        if self.settings.url is None:
            return 0
        pending = self.store.outbox.messages(state="pending")
        if not pending:
            return 0
        sent = 0
        with self._connect() as smtp:
            for message in pending:
                assert message.id is not None
                try:
                    smtp.send_message(self._email(message))
                except smtplib.SMTPException as exc:
                    self.store.outbox.mark(message.id, "failed", self.clock(), type(exc).__name__)
                    continue
                self.store.outbox.mark(message.id, "sent", self.clock())
                sent += 1
        return sent

    def _email(self, message: OutboxMessage) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self.settings.from_
        email["To"] = message.recipient
        email["Subject"] = message.subject
        email.set_content(message.body)
        return email

    def _connect(self) -> smtplib.SMTP:
        assert self.settings.url is not None
        url = urlsplit(self.settings.url.get_secret_value())
        host, port = url.hostname or "localhost", url.port
        smtp: smtplib.SMTP
        if url.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(host, port or 465, timeout=30)
        else:
            smtp = smtplib.SMTP(host, port or 25, timeout=30)
            if url.scheme == "smtp+starttls":
                smtp.starttls()
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        return smtp
