"""What every service step needs, injected once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from referral_sync.clock import Clock
from referral_sync.crm import CrmPort
from referral_sync.links import Links
from referral_sync.models import Referral
from referral_sync.notify import Notifier
from referral_sync.program.loader import LoadedProgram
from referral_sync.program.schema import Program
from referral_sync.rules import PolicyStamp
from referral_sync.service.routing import OwnerDirectory
from referral_sync.store import Store


@dataclass
class ServiceContext:
    """The collaborators of the service layer."""

    store: Store
    crm: CrmPort
    program: LoadedProgram
    clock: Clock
    notifier: Notifier
    links: Links
    owners: OwnerDirectory = field(init=False)

    def __post_init__(self) -> None:
        # One cached directory for the whole service: owner look-ups cost API calls.
        self.owners = OwnerDirectory(self.crm, self.clock)

    @property
    def stamp(self) -> PolicyStamp:
        """Version and content hash recorded on every decision."""
        return PolicyStamp(version=self.program.version, content_hash=self.program.content_hash)

    def program_for(self, referral: Referral) -> Program:
        """The program a referral belongs to (the default one if it was removed since)."""
        try:
            return self.program.config.program(referral.program)
        except KeyError:
            return self.program.config.program()

    def notice_context(self, referral: Referral, program: Program) -> dict[str, Any]:
        """Template variables shared by every referrer notice."""
        owner_name = referral.owner_name
        if owner_name is None and referral.owner_id:
            owner = self.owners.get(referral.owner_id)
            owner_name = owner.name if owner else None
        return {
            "referrer_name": referral.referrer.name or "there",
            "referee_name": referral.referee.full_name,
            "company": referral.referee.company,
            "owner_name": owner_name or "our team",
            "first_action": referral.first_action or "email",
            "first_touch_hours": program.routing.sla.first_touch_hours,
            "referee_offer": program.rewards.referee_offer,
            "portal_url": self.links.portal_url(str(referral.referrer.email)),
            "reward": None, "tier": None, "reward_pending_approval": False,
            "reward_type": program.rewards.type.value, "reversed": None, "reason": None,
            "credit_business_days": program.notifications.credit_business_days,
            "payment_days": program.notifications.payment_days,
        }
