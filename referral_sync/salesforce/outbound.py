"""Parse Salesforce Outbound Messages (SOAP ``notifications``) safely.

Pure functions over the raw request body: no Flask, no I/O. The parser uses defusedxml, so
DTDs, entity expansion ("billion laughs") and external references are refused, and any
malformed input raises ``MalformedOutboundMessage`` (the receiver answers 400) instead of
crashing. Payloads carry the record as it was when Salesforce *sent* the message, which may
be long after the change; processing re-reads the record.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from referral_sync.errors import PermanentError
from referral_sync.models import ChangeEvent
from referral_sync.salesforce.records import change_event
from referral_sync.salesforce.status import StatusMapping

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100

#: The acknowledgement Salesforce requires; any other answer makes it retry the message.
ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">\n'
    b" <soapenv:Body>\n"
    b'  <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">\n'
    b"   <Ack>true</Ack>\n"
    b"  </notificationsResponse>\n"
    b" </soapenv:Body>\n"
    b"</soapenv:Envelope>\n"
)
_SESSION_ID = re.compile(rb"(<(?:\w+:)?SessionId\b[^>]*>)[^<]*(</(?:\w+:)?SessionId>)")


class MalformedOutboundMessage(PermanentError):
    """The body is not a well-formed, safe Outbound Message."""


@dataclass(frozen=True)
class Notification:
    """One changed record: the notification id (unique per delivery) and its fields."""

    id: str
    sobject_type: str
    fields: dict[str, str]


@dataclass(frozen=True)
class OutboundMessage:
    """A whole ``notifications`` call (up to 100 notifications, one ACK for all)."""

    organization_id: str
    action_id: str
    notifications: list[Notification]


def fault(message: str) -> bytes:
    """A SOAP fault body for a refused message (Salesforce retries it later)."""
    text = (message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>soapenv:Client</faultcode><faultstring>{text}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>\n"
    ).encode()


def _text(parent: Element, tag: str) -> str:
    child = parent.find(f"{{{OUTBOUND_NS}}}{tag}")
    return (child.text or "").strip() if child is not None else ""


def _notification(item: Element) -> Notification:
    note_id = _text(item, "Id")
    sobject = item.find(f"{{{OUTBOUND_NS}}}sObject")
    if not note_id or sobject is None:
        raise MalformedOutboundMessage("Notification without Id or sObject")
    sobject_type = sobject.get(f"{{{XSI_NS}}}type", "").rsplit(":", 1)[-1]
    fields = {
        child.tag.rsplit("}", 1)[-1]: (child.text or "").strip()
        for child in sobject
        if child.get(f"{{{XSI_NS}}}nil") != "true"
    }
    if not sobject_type or not fields.get("Id"):
        raise MalformedOutboundMessage("sObject without type or Id")
    return Notification(note_id, sobject_type, fields)


def parse_outbound_message(raw: bytes) -> OutboundMessage:
    """Parse and check the structure of an Outbound Message.

    Raises:
        MalformedOutboundMessage: for anything that is not a safe, complete message.
    """
    try:
        root = SafeET.fromstring(raw, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError, UnicodeError, RecursionError) as exc:
        raise MalformedOutboundMessage(f"not a safe XML document: {type(exc).__name__}") from exc
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        raise MalformedOutboundMessage("not a SOAP envelope")
    body = root.find(f"{{{SOAP_NS}}}Body/{{{OUTBOUND_NS}}}notifications")
    if body is None:
        raise MalformedOutboundMessage("no notifications element")
    organization_id = _text(body, "OrganizationId")
    items = body.findall(f"{{{OUTBOUND_NS}}}Notification")
    if not organization_id or not items:
        raise MalformedOutboundMessage("OrganizationId or Notification missing")
    if len(items) > MAX_NOTIFICATIONS:
        raise MalformedOutboundMessage(f"more than {MAX_NOTIFICATIONS} notifications")
    return OutboundMessage(organization_id, _text(body, "ActionId"),
                           [_notification(item) for item in items])


def same_organization(configured: str, received: str) -> bool:
    """Org ids match on their first 15 characters (15- and 18-character forms are equal;
    the 15-character form is case-sensitive)."""
    return len(configured) >= 15 and hmac.compare_digest(configured[:15].encode(),
                                                         received[:15].encode())


def to_change_events(message: OutboundMessage, statuses: StatusMapping,
                     received_at: datetime) -> list[ChangeEvent]:
    """One ChangeEvent per notification of a tracked object; the notification id is the
    event id, so a redelivered notification is a duplicate in the inbox."""
    events = []
    for note in message.notifications:
        event = change_event(note.id, note.sobject_type, note.fields, statuses, received_at)
        if event is not None:
            events.append(event)
    return events


def redact_session_id(raw: bytes) -> bytes:
    """The body with any session id blanked, so a live credential is never stored."""
    return _SESSION_ID.sub(rb"\1\2", raw)
