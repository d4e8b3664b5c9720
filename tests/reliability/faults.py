"""A fault-injecting CRM port: the test double at the port boundary that the reliability
tests put between the service and the local CRM. It fails a seeded share of calls the way
real CRMs do (429 with Retry-After, 5xx, timeouts), sometimes *after* the write went through
(the response was lost), and can "kill the worker" after N calls by raising a BaseException
the worker does not catch, which abandons its lease mid-job exactly like SIGKILL would."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TypeVar

from referral_sync.crm import (
    AppliedChanges,
    CrmPort,
    CrmRecordRef,
    CrmTask,
    DuplicateCandidate,
    IntakeLookup,
    IntakeSnapshot,
    Owner,
    ReferralSnapshot,
    ReferrerContext,
    SchemaChange,
    apply_one_by_one,
    load_intake_one_by_one,
    on_record,
)
from referral_sync.errors import CrmRetryableError
from referral_sync.models import ChangeEvent, Referral, RewardEntry, RoutingDecision

T = TypeVar("T")


class WorkerKilled(BaseException):  # noqa: N818 - it stands for a signal, not an error
    """The process died here (SIGKILL); nothing after this line of the job runs."""


class FaultyCrm:
    """Wraps a ``CrmPort``; ``rate`` of calls fail, half of the writes after succeeding."""

    def __init__(self, inner: CrmPort, *, rate: float = 0.0, seed: int = 0,
                 retry_after: tuple[float, ...] = (1.0, 10.0, 30.0)) -> None:
        self.inner = inner
        self.retry_after = retry_after
        self.provider = inner.provider
        self.statuses_set_by_crm = inner.statuses_set_by_crm
        self.rate = rate
        self.rng = random.Random(seed)
        self.kill_after: int | None = None
        #: when set, every call raises this (a CRM that refuses or is down for good)
        self.fail_with: Exception | None = None
        self.injected = 0
        self.calls = 0

    def _fault(self) -> CrmRetryableError:
        self.injected += 1
        kind = self.rng.choice(["429", "503", "timeout"])
        if kind == "429":
            return CrmRetryableError("rate limited", provider=self.provider, http_status=429,
                                     retry_after=self.rng.choice(self.retry_after))
        if kind == "503":
            return CrmRetryableError("service unavailable", provider=self.provider,
                                     http_status=503)
        return CrmRetryableError("read timed out", provider=self.provider)

    def _tick_kill(self) -> None:
        if self.kill_after is not None:
            self.kill_after -= 1
            if self.kill_after < 0:
                self.kill_after = None
                raise WorkerKilled()

    def _call(self, fn: Callable[[], T], *, write: bool = False) -> T:
        self.calls += 1
        self._tick_kill()
        if self.fail_with is not None:
            raise self.fail_with
        if self.rate and self.rng.random() < self.rate:
            if write and self.rng.random() < 0.5:
                fn()  # the CRM did it, but the caller never hears back
            raise self._fault()
        return fn()

    def find_duplicates(self, email: str, domain: str | None, company_key: str,
                        since: datetime) -> list[DuplicateCandidate]:
        return self._call(lambda: self.inner.find_duplicates(email, domain, company_key, since))

    def load_referrer(self, email: str) -> ReferrerContext | None:
        return self._call(lambda: self.inner.load_referrer(email))

    def find_account_by_domain(self, domain: str) -> ReferrerContext | None:
        return self._call(lambda: self.inner.find_account_by_domain(domain))

    def get_owner(self, ref: str) -> Owner | None:
        return self._call(lambda: self.inner.get_owner(ref))

    def load_intake(self, lookup: IntakeLookup) -> IntakeSnapshot:
        # Read by read through the faults, like a CRM that cannot batch.
        return load_intake_one_by_one(self, lookup)

    def create_referral(self, referral: Referral, decision: RoutingDecision, *,
                        tasks: Sequence[CrmTask] = ()) -> CrmRecordRef:
        # The record, then each task, through the faults: a failure can leave the record
        # without its tasks, and the retry must finish the job without repeating any.
        record = self._call(lambda: self.inner.create_referral(referral, decision), write=True)
        for task in tasks:
            self.create_task(on_record(task, record.record_id))
        return record

    def update_referral(self, referral: Referral, *,
                        fields: dict[str, object] | None = None) -> None:
        self._call(lambda: self.inner.update_referral(referral, fields=fields), write=True)

    def read_referral(self, referral: Referral) -> ReferralSnapshot:
        return self._call(lambda: self.inner.read_referral(referral))

    def upsert_reward(self, entry: RewardEntry) -> str:
        return self._call(lambda: self.inner.upsert_reward(entry), write=True)

    def create_task(self, task: CrmTask) -> str:
        return self._call(lambda: self.inner.create_task(task), write=True)

    def apply_changes(
        self, referral: Referral, *, fields: dict[str, object] | None = None,
        rewards: Sequence[RewardEntry] = (), tasks: Sequence[CrmTask] = (),
    ) -> AppliedChanges:
        # Part by part through the faults: a failure can leave some parts written, the
        # hardest case for a retry.
        return apply_one_by_one(self, referral, fields=fields, rewards=rewards, tasks=tasks)

    def list_changes(self, since: datetime) -> Iterator[ChangeEvent]:
        changes = self._call(lambda: list(self.inner.list_changes(since)))
        yield from changes

    def ensure_schema(self, *, dry_run: bool) -> list[SchemaChange]:
        return self._call(lambda: self.inner.ensure_schema(dry_run=dry_run))

    def api_calls(self) -> int:
        return self.inner.api_calls()
