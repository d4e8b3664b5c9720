"""Tasks for AEs and CSMs, attached to the referral's contact (or a deal or company).

A task create is not idempotent in HubSpot (tasks cannot have unique-value properties), so
creates go through the pool that never replays a request HubSpot may have received, and a
task with a key is looked up before it is created: first in this process's memo, then by its
``referral_task_key`` (one search for all the keys of a call, ``IN``), so a job that is
retried, in this process or another, finds the tasks its earlier attempt made. The search is
skipped for keys the caller knows cannot exist yet (tasks on a contact created in this very
call). A retry within seconds of an ambiguous
failure, such as a timeout, can miss a task search has not indexed yet: that is HubSpot's
documented search lag.

Several tasks are created in one ``batch/create`` with their associations inline; a 207
answer keeps the tasks that were created (remembered by key) and raises for the rest.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from referral_sync.crm import CrmTask
from referral_sync.errors import CrmPermanentError, CrmRetryableError
from referral_sync.hubspot.client import HubSpotClient, Reply
from referral_sync.hubspot.memo import Memo
from referral_sync.hubspot.owners import OwnerDirectory
from referral_sync.hubspot.records import writable
from referral_sync.hubspot.search import Searcher, eq
from referral_sync.hubspot.translate import PROVIDER, ErrorBody
from referral_sync.logs import redact

#: HUBSPOT_DEFINED task association type ids (associations overview table).
TASK_TO = {"contact": 204, "company": 192, "deal": 216}
_TYPES = {"call": "CALL", "email": "EMAIL"}
#: Object batch endpoints and ``IN`` filters take at most 100 inputs/values.
BATCH = 100
_TRANSIENT = ("RATE_LIMIT", "INTERNAL", "TIMEOUT", "UNAVAILABLE")


def _targets(what_id: str | None) -> list[tuple[str, str]]:
    """(kind, record id) pairs a task hangs on: ``"123"`` (a contact), ``"deal:456"``, or
    several joined by ``,`` (``"123,deal:456"``)."""
    if not what_id:
        raise ValueError("a HubSpot task must name the record it belongs to")
    out = []
    for part in what_id.split(","):
        kind, _, record = part.strip().partition(":")
        out.append((kind, record) if record and kind in TASK_TO else ("contact", part.strip()))
    return out


def _trace(index: int, task: CrmTask) -> str:
    return task.key or f"task-{index}"


class TaskWriter:
    """Creates tasks, idempotently when they carry a key."""

    def __init__(self, client: HubSpotClient, searcher: Searcher, owners: OwnerDirectory,
                 memo: Memo) -> None:
        self._client = client
        self._search = searcher
        self._owners = owners
        self._memo = memo

    def create(self, task: CrmTask) -> str:
        """Create ``task``, or return the task already made for its key."""
        return self.create_many([task])[str(task.key)]

    def create_many(self, tasks: Sequence[CrmTask], *,
                    absent: Collection[str] = ()) -> dict[str, str]:
        """Create ``tasks`` (keyed ones once); returns task ids by ``str(task.key)``.

        Args:
            absent: keys known not to exist in HubSpot yet; they are not searched for.

        Raises:
            CrmPermanentError / CrmRetryableError: a create failed (tasks created before the
                failure are remembered, so a retry does not repeat them).
        """
        ids: dict[str, str] = {}
        pending: list[CrmTask] = []
        for task in tasks:
            known = self._memo.linked(task.key, "task") if task.key else None
            if known:
                ids[str(task.key)] = known
            else:
                pending.append(task)
        wanted = [t.key for t in pending if t.key and t.key not in absent]
        if wanted:
            ids.update(self._find(wanted))
            pending = [t for t in pending if not (t.key and t.key in ids)]
        for start in range(0, len(pending), BATCH):
            ids.update(self._create(pending[start:start + BATCH]))
        return ids

    def _find(self, keys: list[str]) -> dict[str, str]:
        """Tasks already made for ``keys``: one search per 100 keys."""
        found: dict[str, str] = {}
        by_folded = {k.casefold(): k for k in keys}
        for start in range(0, len(keys), BATCH):
            chunk = sorted({k.casefold() for k in keys[start:start + BATCH]})
            flt = eq("referral_task_key", chunk[0]) if len(chunk) == 1 else {
                # IN compares strings in lowercase (search guide).
                "propertyName": "referral_task_key", "operator": "IN", "values": chunk}
            for record in self._search.first("tasks", [[flt]], ["referral_task_key"],
                                             limit=min(200, 2 * len(chunk) + 10)):
                value = str((record.get("properties") or {}).get("referral_task_key") or "")
                key = by_folded.get(value.casefold())
                if key and key not in found:
                    found[key] = str(record["id"])
                    self._memo.link(key, "task", found[key])
        return found

    def _body(self, task: CrmTask) -> dict[str, Any]:
        props = writable({
            "hs_task_subject": task.subject, "hs_task_body": task.description,
            "hs_task_status": "NOT_STARTED", "hs_task_type": _TYPES.get(task.kind, "TODO"),
            "hs_timestamp": task.due or self._client.now(),
            "hubspot_owner_id": self._owners.owner_id(task.owner_id),
            "referral_task_key": task.key,
        })
        return {"properties": {k: v for k, v in props.items() if v != ""},
                "associations": [{"to": {"id": record},
                                  "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                             "associationTypeId": TASK_TO[kind]}]}
                                 for kind, record in _targets(task.what_id)]}

    def _create(self, tasks: list[CrmTask]) -> dict[str, str]:
        if len(tasks) == 1:
            [task] = tasks
            reply = self._client.call("tasks.create", self._client.create_once.create, "tasks",
                                      self._body(task))
            return self._remember(task, str(reply.json()["id"]))
        inputs = [{**self._body(t), "objectWriteTraceId": _trace(i, t)}
                  for i, t in enumerate(tasks)]
        reply = self._client.call("tasks.batch_create", self._client.create_once_batch.create,
                                  "tasks", {"inputs": inputs})
        return self._created(tasks, reply)

    def _created(self, tasks: list[CrmTask], reply: Reply) -> dict[str, str]:
        """Match a batch answer to its inputs (HubSpot does not promise to keep their order):
        by the write trace id HubSpot echoes, else by task key."""
        by_trace = {_trace(i, t): i for i, t in enumerate(tasks)}
        by_key = {t.key.casefold(): i for i, t in enumerate(tasks) if t.key}
        ids: dict[str, str] = {}
        done: set[int] = set()
        for result in reply.json().get("results", []):
            key = str((result.get("properties") or {}).get("referral_task_key") or "")
            index = by_trace.get(str(result.get("objectWriteTraceId") or ""),
                                 by_key.get(key.casefold()))
            if index is not None:
                done.add(index)
                ids.update(self._remember(tasks[index], str(result["id"])))
        if len(done) < len(tasks):
            raise _partial(reply, len(done), len(tasks))
        return ids

    def _remember(self, task: CrmTask, task_id: str) -> dict[str, str]:
        if task.key:
            self._memo.link(task.key, "task", task_id)
        return {str(task.key): task_id}


def _partial(reply: Reply, made: int, wanted: int) -> CrmPermanentError | CrmRetryableError:
    """The error for a 207 that made only some tasks: retryable when HubSpot blamed itself
    (rate limit, internal error, timeout) for any of the rest, else permanent."""
    errors = [ErrorBody.parse(e) for e in reply.json().get("errors", [])]
    detail = redact("; ".join(f"{e.category}: {e.message}" for e in errors[:3]))
    message = (f"HubSpot tasks.batch_create created {made} of {wanted} tasks: "
               f"{detail or 'no answer for the rest'}")
    if any(word in e.category.upper() for e in errors for word in _TRANSIENT):
        return CrmRetryableError(message, provider=PROVIDER, code="PARTIAL_FAILURE")
    return CrmPermanentError(message, provider=PROVIDER, http_status=reply.status,
                             code="PARTIAL_FAILURE")
