"""Upserts as Composite subrequests: write by external id, then read the id back.

Salesforce answers an upsert that updates with ``204 No Content`` on older API versions, so
the id comes from a ``GET`` by the same external id in the same Composite call. An optional
guard query makes the write conditional: the body references the guard's first record,
which Salesforce cannot resolve when the guard finds nothing, so nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simple_salesforce.format import format_external_id

from referral_sync.errors import CrmPermanentError
from referral_sync.salesforce.client import SalesforceClient, SubRequest, SubResult, query_path
from referral_sync.salesforce.faults import PROVIDER


@dataclass(frozen=True)
class Upsert:
    """One record written by external id; ``ref`` names its subrequests in a Composite."""

    ref: str
    sobject: str
    field: str
    key: str
    body: dict[str, Any]
    headers: dict[str, str] | None = None
    guard: str | None = None

    @property
    def guard_ref(self) -> str:
        """The reference id of the guard query (bodies point at ``@{<guard_ref>...}``)."""
        return f"{self.ref}_guard"

    def subrequests(self) -> list[SubRequest]:
        """Guard (optional), write, read-back."""
        path = f"sobjects/{self.sobject}/{format_external_id(self.field, self.key)}"
        fields = "Id,OwnerId" if self.sobject == "Lead" else "Id"
        guard = [SubRequest(self.guard_ref, "GET", query_path(self.guard))] if self.guard else []
        return guard + [SubRequest(self.ref, "PATCH", path, self.body, self.headers),
                        SubRequest(f"{self.ref}_read", "GET", f"{path}?fields={fields}")]

    def result(self, client: SalesforceClient, results: dict[str, SubResult]) -> dict[str, Any]:
        """The written record's ``Id`` (and ``OwnerId`` for Leads).

        Raises:
            CrmPermanentError: ``MILESTONE_NOT_REACHED`` when the guard found nothing, or the
                translated Salesforce error of the write.
            CrmRetryableError: for transient failures (the caller's retry repeats the call).
        """
        if self.guard and not client.raise_for(results.get(self.guard_ref)).records():
            raise CrmPermanentError(
                f"{self.sobject} {self.key}: the CRM no longer shows the state this write needs",
                provider=PROVIDER, code="MILESTONE_NOT_REACHED")
        client.raise_for(results.get(self.ref))
        body = client.raise_for(results.get(f"{self.ref}_read")).body
        return dict(body) if isinstance(body, dict) else {}
