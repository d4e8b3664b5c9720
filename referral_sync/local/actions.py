"""What an AE does in the local CRM's "UI": touch, qualify, disqualify, nurture, convert a
lead, move an opportunity through its stages. Each change is logged like a CRM's field
history, so it reaches referral-sync through ``list_changes`` exactly as a real CRM's
change events would."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from referral_sync.errors import IllegalTransition, NotFound
from referral_sync.local import tables as t
from referral_sync.local.crm import LocalCrm, new_id


class CrmUser:
    """Acts on the local CRM the way a sales user would."""

    def __init__(self, crm: LocalCrm) -> None:
        self.crm = crm

    def _lead(self, conn: sa.Connection, lead_id: str) -> sa.Row[tuple[object, ...]]:
        lead = conn.execute(sa.select(t.leads).where(t.leads.c.id == lead_id)).first()
        if lead is None:
            raise NotFound(f"no lead {lead_id}")
        return lead

    def _set_lead(self, lead_id: str, field: str, value: str, **values: object) -> None:
        now = self.crm.clock()
        with self.crm.engine.begin() as conn:
            lead = self._lead(conn, lead_id)
            if lead.is_converted:
                raise IllegalTransition(f"lead {lead_id} is converted; work its opportunity")
            conn.execute(t.leads.update().where(t.leads.c.id == lead_id)
                         .values(modified_at=now, **values))
            self.crm.log_change(conn, "lead", lead_id, lead.referral_id, field, value, now)

    def touch(self, lead_id: str) -> None:
        """Log a first call or e-mail on the lead (stops the first-touch SLA clock)."""
        now = self.crm.clock()
        self._set_lead(lead_id, "first_touch", now.isoformat(), status=t.LEAD_WORKING,
                       first_touched_at=now)

    def qualify(self, lead_id: str) -> None:
        """Set the referral status picklist to Qualified."""
        self._set_lead(lead_id, "referral_status", "qualified", referral_status="qualified",
                       status=t.LEAD_QUALIFIED)

    def disqualify(self, lead_id: str, reason: str) -> None:
        """Disqualify with a reason the referrer will be told."""
        self._set_lead(lead_id, "referral_status", "disqualified",
                       referral_status="disqualified", disqualified_reason=reason,
                       status=t.LEAD_UNQUALIFIED)

    def nurture(self, lead_id: str) -> None:
        """Bad timing: park the lead to re-engage later."""
        self._set_lead(lead_id, "referral_status", "nurture", referral_status="nurture",
                       status=t.LEAD_NURTURE)

    def convert(self, lead_id: str, amount: Decimal, stage: str = "Qualification") -> str:
        """Convert the lead: account (matched by domain or new), contact and opportunity, with
        the referral fields carried over as a lead-convert mapping would. Returns the
        opportunity id."""
        now = self.crm.clock()
        with self.crm.engine.begin() as conn:
            lead = self._lead(conn, lead_id)
            if lead.is_converted:
                return str(lead.converted_opportunity_id)
            account = conn.execute(sa.select(t.accounts.c.id).where(
                t.accounts.c.domain == lead.domain)).first()
            account_id = account.id if account else new_id("account")
            if account is None:
                conn.execute(t.accounts.insert().values(
                    id=account_id, name=lead.company, domain=lead.domain, type="Prospect",
                    owner_id=lead.owner_id, created_at=now))
            contact_id, opp_id = new_id("contact"), new_id("opportunity")
            conn.execute(t.contacts.insert().values(
                id=contact_id, account_id=account_id, first_name=lead.first_name,
                last_name=lead.last_name, email=lead.email, referral_id=lead.referral_id,
                created_at=now))
            conn.execute(t.opportunities.insert().values(
                id=opp_id, name=f"{lead.company} (referral)", account_id=account_id,
                stage=stage, amount=amount, is_closed=False, is_won=False,
                owner_id=lead.owner_id, referral_id=lead.referral_id,
                lead_source=lead.lead_source, created_at=now, modified_at=now))
            conn.execute(t.leads.update().where(t.leads.c.id == lead_id).values(
                is_converted=True, converted_account_id=account_id,
                converted_contact_id=contact_id, converted_opportunity_id=opp_id,
                status="Converted", modified_at=now))
            self.crm.log_change(conn, "lead", lead_id, lead.referral_id, "converted", opp_id, now)
        return opp_id

    def set_stage(self, opportunity_id: str, stage: str, amount: Decimal | None = None) -> None:
        """Move an opportunity to ``stage`` (Closed Won, Closed Lost, or back to an open one)."""
        if stage not in t.STAGES:
            raise NotFound(f"no opportunity stage {stage!r}; stages: {', '.join(t.STAGES)}")
        is_closed, is_won = t.STAGES[stage]
        now = self.crm.clock()
        with self.crm.engine.begin() as conn:
            opp = conn.execute(sa.select(t.opportunities).where(
                t.opportunities.c.id == opportunity_id)).first()
            if opp is None:
                raise NotFound(f"no opportunity {opportunity_id}")
            values: dict[str, object] = {"stage": stage, "is_closed": is_closed,
                                         "is_won": is_won, "modified_at": now}
            if amount is not None:
                values["amount"] = amount
            conn.execute(t.opportunities.update()
                         .where(t.opportunities.c.id == opportunity_id).values(**values))
            self.crm.log_change(conn, "opportunity", opportunity_id, opp.referral_id, "stage",
                          stage, now)
