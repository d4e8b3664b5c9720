"""HubSpot adapter: the CRM port on hubspot-api-client, its schema installer, webhook
signature verification and event parsing."""

from referral_sync.hubspot.adapter import HubSpotCrm
from referral_sync.hubspot.events import MalformedEvents, parse_events
from referral_sync.hubspot.signatures import verify_signature

__all__ = ["HubSpotCrm", "MalformedEvents", "parse_events", "verify_signature"]
