"""The composition root: the only place that picks a CRM adapter and wires the store, clock,
notifier, service and worker together from ``Settings``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from referral_sync.clock import Clock, utc_now
from referral_sync.crm import CrmPort
from referral_sync.errors import ConfigurationError
from referral_sync.links import Links
from referral_sync.models import ChangeEvent
from referral_sync.notify import Notifier, SmtpSender
from referral_sync.program.loader import LoadedProgram, load_program
from referral_sync.service import ReferralService, ServiceContext
from referral_sync.settings import CrmKind, Settings
from referral_sync.store import ReceiveResult, Store
from referral_sync.worker import Worker


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

    def receive_events(self, provider: str, events: list[ChangeEvent],
                       raw: bytes) -> ReceiveResult:
        """Durably store a webhook batch (inbox + jobs) before the receiver answers 2xx."""
        return self.service.receive(events)

    def secret_key(self) -> str:
        """The configured secret key, else the one generated into the store."""
        return self.service.ctx.links.secret

    def now(self) -> datetime:
        """The injected clock's time."""
        return self.clock()


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

        return SalesforceCrm.from_settings(settings, mapping)  # type: ignore[no-any-return]
    from referral_sync.hubspot import HubSpotCrm

    return HubSpotCrm.from_settings(settings, mapping)  # type: ignore[no-any-return]


def build_components(settings: Settings, *, clock: Clock = utc_now,
                     crm: CrmPort | None = None, store: Store | None = None,
                     program: LoadedProgram | None = None) -> Components:
    """Wire a process from settings; any collaborator can be passed in instead (tests)."""
    program = program or load_program(settings.program)
    store = store or Store.from_url(settings.database_url)
    crm = crm or build_crm(settings, program, clock)
    notifier = Notifier(store, crm, clock)
    secret = (settings.secret_key.get_secret_value() if settings.secret_key
              else store.settings.secret_key())
    ctx = ServiceContext(store=store, crm=crm, program=program, clock=clock,
                         notifier=notifier, links=Links(secret, settings.public_base_url))
    service = ReferralService(ctx)
    worker = Worker(store, service.handle, clock)
    return Components(settings=settings, program=program, crm=crm, store=store,
                      service=service, worker=worker,
                      smtp=SmtpSender(store, settings.smtp, clock), clock=clock)
