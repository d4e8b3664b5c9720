"""Salesforce adapter: the CRM port on simple-salesforce, the schema it installs (Metadata
API and the ``deploy/salesforce`` source project), and Outbound Message parsing."""

from referral_sync.salesforce.adapter import ASSIGNMENT_RULE, SalesforceCrm
from referral_sync.salesforce.client import SalesforceClient
from referral_sync.salesforce.outbound import (
    ACK,
    MalformedOutboundMessage,
    parse_outbound_message,
    to_change_events,
)
from referral_sync.salesforce.status import StatusMapping

__all__ = [
    "ACK",
    "ASSIGNMENT_RULE",
    "MalformedOutboundMessage",
    "SalesforceClient",
    "SalesforceCrm",
    "StatusMapping",
    "parse_outbound_message",
    "to_change_events",
]
