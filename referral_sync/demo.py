"""``referral-sync demo``: seed the local CRM and play a whole referral lifecycle, telling the
story of who was routed where and why, what was earned, and what each referrer was told.

Everything goes through the real paths: the service for submissions, the local CRM's "UI"
for AE actions, and the reconcile sweep plus worker for the change events."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from referral_sync.app import Components
from referral_sync.errors import ReferralRejected
from referral_sync.local.actions import CrmUser
from referral_sync.local.crm import LocalCrm
from referral_sync.local.seed import describe_accounts, seed
from referral_sync.models import IntroStrength, Referee
from referral_sync.service import IntakeResult, Submission


@dataclass(frozen=True)
class Play:
    """One referral in the demo and what the AE will do with it."""

    referrer: str
    referee: Referee
    intro: IntroStrength
    script: str  # won | lost | disqualified | none
    amount: Decimal = Decimal(0)


class Demo:
    """Runs the demo story on wired components whose CRM is the local one."""

    def __init__(self, components: Components, console: Console) -> None:
        if not isinstance(components.crm, LocalCrm):
            raise TypeError("the demo runs on the local CRM only")
        self.c = components
        self.crm: LocalCrm = components.crm
        self.ae = CrmUser(self.crm)
        self.out = console

    def run(self) -> None:
        """Seed, play, summarise."""
        seed(self.crm, now=self.c.clock())
        accounts = describe_accounts(self.crm)
        self.out.rule("[bold]referral-sync demo: the local CRM is seeded")
        self.out.print(f"{len(accounts)} accounts, 6 AEs in AMER/EMEA/APAC, a referral desk "
                       "rep and the 'Referral Queue'.\n")
        for play in self._plays(accounts):
            self._play(play)
        self._rejections(accounts)
        self._summary()

    def _pick(self, accounts: list[dict[str, object]], *, status: str | None = None,
              type_prefix: str = "Customer", min_age: int = 90) -> dict[str, object]:
        now = self.c.clock()
        for acc in accounts:
            since = acc.get("customer_since")
            age = (now - since).days if since else 0  # type: ignore[operator]
            if (str(acc["type"]).startswith(type_prefix) and acc["status"] == status
                    and age >= min_age):
                return acc
        raise LookupError("seed has no such account")

    def _plays(self, accounts: list[dict[str, object]]) -> list[Play]:
        good = [a for a in accounts if str(a["type"]).startswith("Customer")
                and a["status"] is None][:3]
        return [
            Play(str(good[0]["contact_email"]), Referee(
                first_name="Hana", last_name="Yusof", email="hana.yusof@kelp-robotics.com",
                company="Kelp Robotics Sdn Bhd", employees=1200, country="MY"),
                IntroStrength.STRONG, "won", Decimal(48000)),
            Play(str(good[1]["contact_email"]), Referee(
                first_name="Tom", last_name="Becker", email="tom.becker@ostwerk.de",
                company="Ostwerk GmbH", employees=80, country="DE"),
                IntroStrength.WEAK, "lost", Decimal(15000)),
            Play(str(good[2]["contact_email"]), Referee(
                first_name="Lucy", last_name="Grant", email="lucy.grant@fernhill-foods.com",
                company="Fernhill Foods Ltd", employees=30, country="GB"),
                IntroStrength.WEAK, "disqualified"),
            Play(str(good[0]["contact_email"]), Referee(
                first_name="Marco", last_name="Ricci", email="marco.ricci@lagunatech.com",
                company="Laguna Tech SpA", employees=300, country="IT"),
                IntroStrength.STRONG, "none"),
        ]

    def _play(self, play: Play) -> None:
        self.out.rule(f"[bold]{play.referee.full_name}[/] at {play.referee.company}")
        result = self.c.service.submit(Submission(
            referrer_email=play.referrer, referee=play.referee, intro_strength=play.intro))
        self._tell_routing(result)
        lead_id = result.record.record_id if result.record else ""
        if play.script == "none":
            self.out.print("  The AE has not touched it yet: the 24 h first-touch SLA is running.")
            self._tell_messages(result.referral.id)
            return
        self.ae.touch(lead_id)
        if play.script == "disqualified":
            self.ae.disqualify(lead_id, "no budget this fiscal year")
            self._sync("AE disqualified the lead: no budget this fiscal year")
        else:
            self.ae.qualify(lead_id)
            self._sync("AE set Referral Status = Qualified")
            opp_id = self.ae.convert(lead_id, play.amount)
            self._sync(f"AE converted the lead; opportunity worth USD {play.amount:,}")
            stage = "Closed Won" if play.script == "won" else "Closed Lost"
            self.ae.set_stage(opp_id, stage)
            self._sync(f"AE moved the opportunity to {stage}")
        self._tell_rewards(result.referral.id)
        self._tell_messages(result.referral.id)

    def _sync(self, what: str) -> None:
        found = self.c.service.reconcile()
        stats = self.c.worker.drain()
        self.out.print(f"  [cyan]CRM:[/] {what} → {found.stored} change event(s) processed "
                       f"({stats.processed} job(s))")

    def _tell_routing(self, result: IntakeResult) -> None:
        r = result.referral
        self.out.print(f"  Referred by {r.referrer.name} ({r.referrer.account_name}), "
                       f"{r.intro_strength.value} intro.")
        self.out.print(f"  [green]Routed to {result.owner.name}[/]: {r.routing_reason}")
        self.out.print(f"  First action: {r.first_action}; lead "
                       f"{result.record.record_id if result.record else '(pending)'}; "
                       f"policy {r.policy_version}")
        for reason in result.review_reasons:
            self.out.print(f"  [yellow]Flagged for review:[/] {reason}")

    def _tell_rewards(self, referral_id: str) -> None:
        for e in self.c.store.ledger.entries(referral_id=referral_id):
            approval = ", needs approval" if e.requires_approval else ""
            self.out.print(f"  [magenta]Reward[/] {e.milestone.value}: {e.currency} "
                           f"{e.amount:,.2f} ({e.tier or e.reward_type.value}, "
                           f"{e.state.value}{approval})")

    def _tell_messages(self, referral_id: str) -> None:
        for m in self.c.store.outbox.messages(referral_id=referral_id):
            self.out.print(f"  [blue]Told the referrer[/] ({m.locale}): “{m.subject}”")

    def _rejections(self, accounts: list[dict[str, object]]) -> None:
        self.out.rule("[bold]Referrals the policy refuses (nothing is written to the CRM)")
        referrer = self._pick(accounts)
        other_customer = next(a for a in accounts if str(a["type"]).startswith("Customer")
                              and a["id"] != referrer["id"])
        cases = [
            ("an existing customer", str(referrer["contact_email"]),
             f"someone@{other_customer['domain']}"),
            ("from an at-risk account", str(self._pick(accounts, status="at_risk")
                                            ["contact_email"]), "new.person@quartz-labs.com"),
            ("from a brand-new customer", str(self._newest_customer(accounts)["contact_email"]),
             "other.person@quartz-labs.com"),
            ("from an unknown referrer", "stranger@nowhere-corp.com", "x.y@quartz-labs.com"),
        ]
        for label, referrer_email, referee_email in cases:
            try:
                self.c.service.submit(Submission(referrer_email=referrer_email, referee=Referee(
                    first_name="Pat", last_name="Doe", email=referee_email,
                    company="Quartz Labs")))
                self.out.print(f"  {label}: accepted (unexpected)")
            except ReferralRejected as exc:
                self.out.print(f"  {label}: [red]{exc.code}[/] (HTTP {exc.http_status}) "
                               f"— “{exc.message}”")

    def _newest_customer(self, accounts: list[dict[str, object]]) -> dict[str, object]:
        customers = [a for a in accounts if str(a["type"]).startswith("Customer")
                     and a["status"] is None and a.get("customer_since")]
        return max(customers, key=lambda a: a["customer_since"])  # type: ignore[arg-type,return-value]

    def _summary(self) -> None:
        table = Table(title="Program so far")
        for col in ("referral", "referrer", "status", "owner", "rewards"):
            table.add_column(col)
        for r in self.c.store.referrals.list():
            owner = self.crm.get_owner(r.owner_id) if r.owner_id else None
            rewards = sum((e.amount for e in self.c.store.ledger.entries(referral_id=r.id)),
                          Decimal(0))
            table.add_row(r.referee.company, r.referrer.name, r.status.value,
                          owner.name if owner else "-", f"{rewards:,.2f}")
        self.out.print(table)
