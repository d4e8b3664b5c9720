"""A whole referral against the Salesforce double: install twice, submit, qualify by Outbound
Message, convert, close-won by another message — each message delivered three times — and
the API calls each step costs.

The worker here is the smallest one that does what DESIGN.md §5 asks of a real one (apply
the status an event implies, walk the status machine, write rewards idempotently, tell the
referrer). It trusts the Outbound Message's state instead of re-reading the record: each
reward write re-checks its milestone in Salesforce in the same call, which is what the
re-read protects against. The service-level version of this test lives with the service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from referral_sync.crm import CrmTask
from referral_sync.errors import IllegalTransition
from referral_sync.models import ChangeEvent, Milestone, Referral, ReferralStatus, path_to
from referral_sync.salesforce import SalesforceCrm
from tests.salesforce.conftest import make_crm, make_decision, make_referral, make_reward
from tests.salesforce.fake_org import FakeOrg
from tests.salesforce.test_webhook import Inbox, make_app, post

S = ReferralStatus
NOW = datetime(2026, 6, 2, tzinfo=UTC)


@dataclass
class MiniWorker:
    """Processes inbox events for one referral; counts API calls per status reached."""

    crm: SalesforceCrm
    referral: Referral
    referrer_owner: str
    done: set[str] = field(default_factory=set)
    calls: dict[str, int] = field(default_factory=dict)

    def drain(self, inbox: Inbox) -> None:
        for key, event in list(inbox.events.items()):
            if key[1] not in self.done:
                self.done.add(key[1])
                self.handle(event)

    def handle(self, event: ChangeEvent) -> None:
        if event.referral_id != self.referral.id or event.status is None:
            return
        try:
            steps = path_to(self.referral.status, event.status)
        except IllegalTransition:
            return  # an older state than we already have: stale, nothing to do
        before = self.crm.api_calls()
        rewards, notices = [], []
        for step in steps:
            self.referral.advance(step, NOW)
            if step is S.OPPORTUNITY:
                self.referral.crm_opportunity_id = (
                    event.fields.get("ConvertedOpportunityId") or event.record_id)
            milestone = {S.QUALIFIED: Milestone.QUALIFIED,
                         S.CLOSED_WON: Milestone.CLOSED_WON}.get(step)
            if milestone is not None:
                amount = 200 if milestone is Milestone.QUALIFIED else 1000
                rewards.append(make_reward(self.referral.id, milestone, amount))
                notices.append(CrmTask(
                    subject=f"Tell Hank: his referral reached {step.value}",
                    owner_id=self.referrer_owner, what_id=str(self.referral.referrer.contact_id),
                    key=f"{self.referral.id}:notice:{step.value}"))
        reward_status = ", ".join(f"{r.milestone.value}: {r.state.value}" for r in rewards)
        self.crm.apply_changes(self.referral, rewards=rewards, tasks=notices,
                               fields={"reward_status": reward_status or None})
        self.calls[event.status.value] = self.crm.api_calls() - before


def deliver(client: object, raw: bytes, times: int = 3) -> None:
    for _ in range(times):
        assert post(client, raw).status_code == 200  # type: ignore[arg-type]


def test_referral_lifecycle_in_salesforce(org: FakeOrg, sleeps: list[float],
                                          people: dict[str, str]) -> None:
    crm = make_crm(sleeps)
    assert crm.ensure_schema(dry_run=False)
    assert crm.ensure_schema(dry_run=False) == []
    client, inbox = make_app()
    referral = make_referral(people)

    # intake: referrer facts, duplicate check, lead-to-account match
    start = crm.api_calls()
    referrer = crm.load_referrer(referral.referrer.email)
    assert referrer is not None and referrer.is_paying_customer
    assert crm.find_duplicates(str(referral.referee.email), referral.referee.domain, "initech",
                               NOW - timedelta(days=365)) == []
    assert crm.find_account_by_domain(referral.referee.domain) is None
    intake_reads = crm.api_calls() - start

    # routed to the referrer's AE
    before = crm.api_calls()
    ref = crm.create_referral(referral, make_decision(str(referrer.owner_id)))
    created = crm.api_calls() - before
    referral.crm_record_id = ref.record_id
    worker = MiniWorker(crm, referral, str(referrer.owner_id))

    # the AE qualifies the Lead; Salesforce sends the Outbound Message three times
    org.update("Lead", ref.record_id, Status="Working - Contacted", Referral_Status__c="Qualified")
    deliver(client, org.outbound_message("Lead", [ref.record_id]))
    worker.drain(inbox)
    # the AE converts; the conversion message says which Opportunity
    opportunity = org.convert_lead(ref.record_id)["Opportunity"]
    deliver(client, org.outbound_message("Lead", [ref.record_id]))
    worker.drain(inbox)
    # the deal closes
    org.update("Opportunity", opportunity, StageName="Closed Won", IsWon=True, IsClosed=True,
               Amount=48000.0)
    won_message = org.outbound_message("Opportunity", [opportunity])
    deliver(client, won_message)
    worker.drain(inbox)

    assert referral.status is S.CLOSED_WON
    leads = list(org.db["Lead"].values())
    assert len(leads) == 1 and leads[0]["OwnerId"] == people["ae"]
    rewards = sorted((r["Milestone__c"], r["Amount__c"], r.get("Opportunity__c"))
                     for r in org.db["Referral_Reward__c"].values())
    assert rewards == [("closed_won", 1000.0, opportunity), ("qualified", 200.0, None)]
    notices = sorted(t["Subject"] for t in org.db["Task"].values())
    assert notices == ["Tell Hank: his referral reached closed_won",
                       "Tell Hank: his referral reached qualified"]
    assert len(inbox.events) == 3  # nine deliveries, three notifications

    # The bill, in API calls: one to create the routed Lead, then one per event for status,
    # reward (its milestone re-checked in the same call) and referrer notice together.
    assert (intake_reads, created) == (2, 1)
    assert worker.calls == {"qualified": 1, "opportunity": 1, "closed_won": 1}
    assert created + sum(worker.calls.values()) == 4
    opportunity_record = org.db["Opportunity"][opportunity]
    assert (opportunity_record["Referral_Status__c"],
            opportunity_record["Referral_Reward_Status__c"]) == ("Closed Won", "closed_won: earned")

    # the same message again, even straight to the worker (a replay), changes nothing more
    calls = crm.api_calls()
    deliver(client, won_message)
    worker.drain(inbox)
    worker.handle(next(iter(inbox.events.values())))
    assert crm.api_calls() == calls
    referral.status = S.OPPORTUNITY  # as if the worker had lost its state
    worker.handle(list(inbox.events.values())[-1])
    assert len(org.db["Referral_Reward__c"]) == 2 and len(org.db["Task"]) == 2
