"""Settings from the environment (prefix ``REFERRAL_SYNC_``, nested with ``__``) and ``.env``.

Loaded once by the composition root and passed down; nothing else reads ``os.environ``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CrmKind(StrEnum):
    """Which CRM adapter the composition root builds."""

    LOCAL = "local"
    SALESFORCE = "salesforce"
    HUBSPOT = "hubspot"


class SalesforceSettings(BaseModel):
    """Salesforce connection: access token, username/password/token, or JWT bearer."""

    instance_url: str | None = None
    access_token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    domain: str = "login"
    consumer_key: str | None = None
    private_key_file: Path | None = None
    org_id: str | None = None
    api_version: str = "62.0"
    webhook_token: SecretStr | None = None
    timeout_seconds: float = 30.0

    def auth_problems(self) -> list[str]:
        """What is missing for any of the three ways to authenticate."""
        if self.access_token and self.instance_url:
            return []
        if self.username and self.password:
            return []
        if self.username and self.consumer_key and self.private_key_file:
            return []
        return [
            "salesforce: set INSTANCE_URL + ACCESS_TOKEN, or USERNAME + PASSWORD "
            "(+ SECURITY_TOKEN), or USERNAME + CONSUMER_KEY + PRIVATE_KEY_FILE"
        ]


class HubSpotSettings(BaseModel):
    """HubSpot connection and webhook signing secret(s)."""

    access_token: SecretStr | None = None
    base_url: str = "https://api.hubapi.com"
    client_secret: SecretStr | None = None
    previous_client_secrets: list[SecretStr] = Field(default_factory=list)
    portal_id: str | None = None
    timeout_seconds: float = 30.0
    #: our app's id: webhook events whose ``sourceId`` names it are echoes of our own writes
    app_id: str | None = None
    #: the portal's time-zone setting (the daily API limit resets at its midnight)
    timezone: str = "UTC"
    #: where rewards go: the custom object if the portal allows it (``auto``), always
    #: (``custom_object``), or the deal's reward properties (``deal_properties``)
    reward_object: Literal["auto", "custom_object", "deal_properties"] = "auto"

    def auth_problems(self) -> list[str]:
        """What is missing to talk to a portal."""
        return [] if self.access_token else ["hubspot: set REFERRAL_SYNC_HUBSPOT__ACCESS_TOKEN"]


class SmtpSettings(BaseModel):
    """Outgoing e-mail; unset means messages stay in the outbox table and the log."""

    url: SecretStr | None = None
    from_: str = Field(default="referrals@example.com", alias="from")

    model_config = {"populate_by_name": True}


class WorkerSettings(BaseModel):
    """The job worker and its periodic tasks (``serve`` in-process, or ``worker``)."""

    threads: int = Field(default=2, ge=1, le=64)
    lease_seconds: float = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    sweep_seconds: float = Field(default=5.0, gt=0)
    reconcile_seconds: float | None = Field(
        default=None, gt=0, description="default: 5 s on the local CRM, else 900 s")
    #: each pass re-reads overdue referrals from the CRM, so not too often (API limits)
    sla_seconds: float = Field(default=900.0, gt=0)
    digest_seconds: float = Field(default=3600.0, gt=0)


class Settings(BaseSettings):
    """All runtime settings (DESIGN.md §4)."""

    model_config = SettingsConfigDict(
        env_prefix="REFERRAL_SYNC_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    crm: CrmKind = CrmKind.LOCAL
    program: Path | None = None
    database_url: str = "sqlite:///referral-sync.db"
    queue_url: str = "sqlite:///referral-sync-queue.db"
    local_crm_url: str = "sqlite:///referral-sync-crm.db"
    public_base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = None
    max_body_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    salesforce: SalesforceSettings = Field(default_factory=SalesforceSettings)
    hubspot: HubSpotSettings = Field(default_factory=HubSpotSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)

    @model_validator(mode="after")
    def _strip_base_url(self) -> Settings:
        self.public_base_url = self.public_base_url.rstrip("/")
        return self

    def problems(self) -> list[str]:
        """Everything that stops the configured CRM from being used (for ``check``)."""
        if self.crm is CrmKind.SALESFORCE:
            return self.salesforce.auth_problems()
        if self.crm is CrmKind.HUBSPOT:
            return self.hubspot.auth_problems()
        return []
