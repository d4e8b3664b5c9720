"""Tasks for AEs and CSMs, attached to the referral's contact (or a deal or company).

A task create is not idempotent in HubSpot, so it goes through the pool that never replays a
request HubSpot may have received, and a task with a key is looked up before it is created:
first in this process's memo, then by its ``referral_task_key`` (one search), so a job that
is retried, in this process or another, finds the task its earlier attempt made. (A retry
within seconds of an ambiguous failure, such as a timeout, can miss a task search has not
indexed yet; that is HubSpot's documented search lag.)
"""

from __future__ import annotations

from referral_sync.crm import CrmTask
from referral_sync.hubspot.client import HubSpotClient
from referral_sync.hubspot.memo import Memo
from referral_sync.hubspot.owners import OwnerDirectory
from referral_sync.hubspot.records import writable
from referral_sync.hubspot.search import Searcher, eq

#: HUBSPOT_DEFINED task association type ids (associations overview table).
TASK_TO = {"contact": 204, "company": 192, "deal": 216}
_TYPES = {"call": "CALL", "email": "EMAIL"}


def _target(what_id: str) -> tuple[str, str]:
    kind, _, record = what_id.partition(":")
    return (kind, record) if record and kind in TASK_TO else ("contact", what_id)


class TaskWriter:
    """Creates tasks, idempotently when they carry a key."""

    def __init__(self, client: HubSpotClient, searcher: Searcher, owners: OwnerDirectory,
                 memo: Memo) -> None:
        self._client = client
        self._search = searcher
        self._owners = owners
        self._memo = memo

    def _existing(self, key: str) -> str | None:
        known = self._memo.linked(key, "task")
        if known:
            return known
        found = self._search.first("tasks", [[eq("referral_task_key", key)]],
                                   ["referral_task_key"], limit=1)
        if not found:
            return None
        self._memo.link(key, "task", str(found[0]["id"]))
        return str(found[0]["id"])

    def create(self, task: CrmTask) -> str:
        """Create ``task``, or return the task already made for its key."""
        if task.key:
            existing = self._existing(task.key)
            if existing:
                return existing
        kind, record = _target(task.what_id)
        props = writable({
            "hs_task_subject": task.subject, "hs_task_body": task.description,
            "hs_task_status": "NOT_STARTED", "hs_task_type": _TYPES.get(task.kind, "TODO"),
            "hs_timestamp": task.due or self._client.now(),
            "hubspot_owner_id": self._owners.owner_id(task.owner_id),
            "referral_task_key": task.key,
        })
        body = {"properties": {k: v for k, v in props.items() if v != ""},
                "associations": [{"to": {"id": record},
                                  "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                             "associationTypeId": TASK_TO[kind]}]}]}
        reply = self._client.call("tasks.create", self._client.create_once.create, "tasks",
                                  body)
        task_id = str(reply.json()["id"])
        if task.key:
            self._memo.link(task.key, "task", task_id)
        return task_id
