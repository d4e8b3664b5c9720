"""Build a ``simple_salesforce.Salesforce`` from settings, in one of three auth modes.

1. access token + instance URL (``direct``: no login request; an expired token is an error
   until the token is replaced),
2. username + password (+ security token; empty when the org allow-lists our IP) via SOAP
   login, re-done automatically by simple-salesforce when the session expires,
3. JWT bearer: username + connected-app consumer key + private key file.
"""

from __future__ import annotations

import requests
from simple_salesforce.api import Salesforce

from referral_sync.errors import ConfigurationError
from referral_sync.settings import SalesforceSettings


def connect(settings: SalesforceSettings, session: requests.Session) -> Salesforce:
    """Log in (or not, for a ready access token) and return the API client.

    Raises:
        ConfigurationError: when no auth mode is fully configured.
        SalesforceAuthenticationFailed: from simple-salesforce when the login is refused.
    """
    if settings.access_token and settings.instance_url:
        return Salesforce(
            session_id=settings.access_token.get_secret_value(),
            instance_url=settings.instance_url,
            version=settings.api_version,
            session=session,
            object_pairs_hook=dict,
        )
    if settings.username and settings.password:
        token = settings.security_token.get_secret_value() if settings.security_token else ""
        return Salesforce(
            username=settings.username,
            password=settings.password.get_secret_value(),
            security_token=token,
            domain=settings.domain,
            client_id="referral-sync",
            version=settings.api_version,
            session=session,
            object_pairs_hook=dict,
        )
    if settings.username and settings.consumer_key and settings.private_key_file:
        return Salesforce(
            username=settings.username,
            consumer_key=settings.consumer_key,
            privatekey_file=str(settings.private_key_file),
            domain=settings.domain,
            version=settings.api_version,
            session=session,
            object_pairs_hook=dict,
        )
    raise ConfigurationError("salesforce: no complete credentials", settings.auth_problems())
