"""The composition root: the only place that picks a CRM adapter and wires the store, clock,
notifier, service and worker together from ``Settings``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from referral_sync.clock import Clock, utc_now
from referral_sync.crm import CrmPort
from referral_sync.errors import ConfigurationError
from referral_sync.links import Links
from referral_sync.metrics import MeteredCrm, Metrics
from referral_sync.models import ChangeEvent
from referral_sync.notify import Notifier, SmtpSender
from referral_sync.program.loader import LoadedProgram, load_program
from referral_sync.queue import JobQueue, Tasks
from referral_sync.service import ReferralService, ServiceContext
from referral_sync.service.sla import Digests, SlaChecks
from referral_sync.settings import CrmKind, Settings
from referral_sync.store import ReceiveResult, Store
from referral_sync.worker import RetryPolicy, Worker

if TYPE_CHECKING:
    from referral_sync.queue import QueueConsumer


@dataclass
class Components:
    """Everything a process (web, worker, CLI) needs, built once."""

    settings: Settings
    program: LoadedProgram
    crm: CrmPort
    store: Store
    service: ReferralService
    worker: Worker
    smtp: SmtpSender
    clock: Clock
    metrics: Metrics | None = None
    queue: JobQueue | None = None
    tasks: Tasks | None = None

    def receive_events(self, provider: str, events: list[ChangeEvent],
                       raw: bytes) -> ReceiveResult:
        """Durably store a webhook batch (inbox + jobs) before the receiver answers 2xx, then
        wake a worker. A queue outage costs latency, not events: the sweeper finds them."""
        result = self.store.inbox.receive(events, self.clock(), enqueued=self.queue is not None)
        if self.metrics is not None:
            self.metrics.events_received.labels(provider=provider).inc(len(events))
            if result.duplicates:
                self.metrics.events_deduplicated.labels(provider=provider).inc(result.duplicates)
        if self.queue is not None and result.job_ids:
            self.queue.announce(result.job_ids)
        return result

    def periodic_intervals(self) -> dict[str, float]:
        """Seconds between runs of each periodic task (DESIGN.md §5)."""
        worker = self.settings.worker
        reconcile = worker.reconcile_seconds or (5.0 if self.crm.provider == "local" else 900.0)
        return {"sweep": worker.sweep_seconds, "reconcile": reconcile,
                "sla": worker.sla_seconds, "digest": worker.digest_seconds,
                "deliver": max(worker.sweep_seconds, 30.0)}

    def consumer(self, *, signals: bool, threads: int | None = None) -> QueueConsumer:
        """A queue consumer running jobs and the periodic tasks of this process."""
        from referral_sync.queue import Ticker

        if self.queue is None:
            raise ConfigurationError("no task queue configured")
        ticker = Ticker(self.store, self.queue, self.periodic_intervals(), self.clock)
        return self.queue.consumer(ticker, threads=threads or self.settings.worker.threads,
                                   signals=signals)

    def secret_key(self) -> str:
        """The configured secret key, else the one generated into the store."""
        return self.service.ctx.links.secret

    def now(self) -> datetime:
        """The injected clock's time."""
        return self.clock()

    def close(self) -> None:
        """Release database connections and the queue's storage."""
        self.store.close()
        if self.queue is not None:
            self.queue.settle()
            self.queue.huey.storage.close()


def build_crm(settings: Settings, program: LoadedProgram, clock: Clock) -> CrmPort:
    """The CRM adapter the settings ask for."""
    mapping = program.config.crm
    if settings.crm is CrmKind.LOCAL:
        from referral_sync.local.crm import LocalCrm

        return LocalCrm.from_url(settings.local_crm_url, mapping, clock)
    problems = settings.problems()
    if problems:
        raise ConfigurationError("CRM settings are incomplete", problems)
    if settings.crm is CrmKind.SALESFORCE:
        from referral_sync.salesforce import SalesforceCrm

        return SalesforceCrm.from_settings(settings, mapping)
    from referral_sync.hubspot import HubSpotCrm

    return HubSpotCrm.from_settings(settings, mapping)


def build_components(settings: Settings, *, clock: Clock = utc_now,
                     crm: CrmPort | None = None, store: Store | None = None,
                     program: LoadedProgram | None = None,
                     queue: JobQueue | None = None) -> Components:
    """Wire a process from settings; any collaborator can be passed in instead (tests)."""
    program = program or load_program(settings.program)
    store = store or Store.from_url(settings.database_url)
    crm = crm or build_crm(settings, program, clock)
    metrics = Metrics(store)
    # The service sees the CRM through a meter; ``Components.crm`` stays the adapter itself.
    metered = MeteredCrm(crm, metrics)
    notifier = Notifier(store, clock)
    secret = (settings.secret_key.get_secret_value() if settings.secret_key
              else store.settings.secret_key())
    ctx = ServiceContext(store=store, crm=metered, program=program, clock=clock,
                         notifier=notifier, links=Links(secret, settings.public_base_url))
    service = ReferralService(ctx)
    worker = Worker(store, service.handle, clock, metrics=metrics,
                    retry=RetryPolicy(max_attempts=settings.worker.max_attempts),
                    lease_seconds=settings.worker.lease_seconds)
    smtp = SmtpSender(store, settings.smtp, clock)
    queue = queue or JobQueue.from_url(settings.queue_url)
    sla = SlaChecks(ctx, service.intake.router)
    tasks = Tasks(worker, queue, store, clock, periodic_jobs={
        "reconcile": service.reconcile, "sla": sla.run, "digest": Digests(ctx).run,
        "deliver": smtp.deliver_pending})
    queue.bind(tasks)
    metrics.queue_depth = queue.depth
    return Components(settings=settings, program=program, crm=crm, store=store,
                      service=service, worker=worker, smtp=smtp, clock=clock,
                      metrics=metrics, queue=queue, tasks=tasks)
