"""Which referral status a Lead or Opportunity implies (DESIGN.md §4, default CRM mapping).

Shared by the Outbound Message receiver (field values arrive as text) and the adapter's
re-reads (JSON values), so both always agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from referral_sync.models import ReferralStatus
from referral_sync.program.schema import CrmMapping
from referral_sync.salesforce import schema as s

S = ReferralStatus

#: ``Referral_Status__c`` picklist values (installed by referral-sync).
REFERRAL_STATUS_VALUES: dict[str, ReferralStatus] = {
    "Submitted": S.SUBMITTED,
    "Qualified": S.QUALIFIED,
    "Disqualified": S.DISQUALIFIED,
    "Nurture": S.NURTURE,
    "Opportunity": S.OPPORTUNITY,
    "Closed Won": S.CLOSED_WON,
    "Closed Lost": S.CLOSED_LOST,
    "Duplicate": S.DUPLICATE,
    "Ineligible": S.INELIGIBLE,
}
#: Standard Lead ``Status`` values that decide a referral on their own.
LEAD_STATUS_VALUES: dict[str, ReferralStatus] = {"Closed - Not Converted": S.DISQUALIFIED}
#: Lead statuses meaning "nobody has worked this yet" (the first-touch SLA).
UNTOUCHED_LEAD_STATUSES = frozenset({"Open - Not Contacted"})


def truthy(value: Any) -> bool:
    """A Salesforce boolean as JSON (``true``) or Outbound Message text (``"true"``)."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


@dataclass(frozen=True)
class StatusMapping:
    """CRM values → referral status; ``CrmMapping.status_values`` extends both tables."""

    referral_values: Mapping[str, ReferralStatus] = field(
        default_factory=lambda: dict(REFERRAL_STATUS_VALUES))
    lead_values: Mapping[str, ReferralStatus] = field(
        default_factory=lambda: dict(LEAD_STATUS_VALUES))
    untouched_statuses: frozenset[str] = UNTOUCHED_LEAD_STATUSES

    @classmethod
    def from_mapping(cls, mapping: CrmMapping | None) -> StatusMapping:
        """Defaults plus the program file's ``crm.status_values`` overrides."""
        extra = dict(mapping.status_values) if mapping else {}
        return cls({**REFERRAL_STATUS_VALUES, **extra}, {**LEAD_STATUS_VALUES, **extra})

    def label(self, status: ReferralStatus) -> str:
        """The ``Referral_Status__c`` value written for ``status``."""
        for value, mapped in self.referral_values.items():
            if mapped is status and value in s.STATUS_VALUES:
                return value
        return status.value.replace("_", " ").title()

    def lead_status(self, lead: Mapping[str, Any]) -> ReferralStatus | None:
        """The status a Lead implies, or None when it says nothing about the referral.

        Converted ⇒ opportunity (or qualified when converted without one); an AE's explicit
        Referral Status decision wins over the standard Lead Status, which in turn wins
        over a plain "Submitted".
        """
        if truthy(lead.get("IsConverted")):
            return S.OPPORTUNITY if lead.get("ConvertedOpportunityId") else S.QUALIFIED
        referral = self.referral_values.get(str(lead.get(s.REFERRAL_STATUS) or ""))
        if referral is not None and referral is not S.SUBMITTED:
            return referral
        by_status = self.lead_values.get(str(lead.get("Status") or ""))
        return by_status or referral

    @staticmethod
    def opportunity_status(opportunity: Mapping[str, Any]) -> ReferralStatus:
        """Won ⇒ closed_won, closed ⇒ closed_lost, open (or reopened) ⇒ opportunity."""
        if truthy(opportunity.get("IsWon")):
            return S.CLOSED_WON
        if truthy(opportunity.get("IsClosed")):
            return S.CLOSED_LOST
        return S.OPPORTUNITY

    def touched(self, lead: Mapping[str, Any]) -> bool:
        """Whether the owner has worked the Lead (first-touch SLA)."""
        return bool(
            truthy(lead.get("IsConverted"))
            or lead.get("LastActivityDate")
            or str(lead.get("Status") or "") not in self.untouched_statuses
        )
