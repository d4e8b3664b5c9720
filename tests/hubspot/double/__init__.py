"""A loopback HTTP stand-in for HubSpot's CRM APIs (see ``server.HubSpotDouble``)."""

from tests.hubspot.double.server import TOKEN, HubSpotDouble, rate_limit_body
from tests.hubspot.double.state import ApiError, Portal, Record

__all__ = ["TOKEN", "ApiError", "HubSpotDouble", "Portal", "Record", "rate_limit_body"]
