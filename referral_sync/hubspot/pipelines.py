"""Deal pipelines: which stage means closed-won, closed-lost or open, from stage metadata.

Stage ids are portal-specific (custom stages have numeric or GUID-like ids), so nothing here
knows a stage by name. Each deal stage's metadata carries ``isClosed`` ("true"/"false") and
``probability`` ("0.0"…"1.0"): closed with probability 1.0 is won, any other closed stage is
lost. The map is cached; an unknown stage id (a stage added since) refreshes it, at most
once per ``min_refresh`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from referral_sync.errors import ConfigurationError
from referral_sync.hubspot.client import HubSpotClient
from referral_sync.models import ReferralStatus


@dataclass(frozen=True)
class Stage:
    """One deal stage and what it means for a referral."""

    id: str
    pipeline_id: str
    label: str
    display_order: int
    is_closed: bool
    probability: float | None

    @property
    def won(self) -> bool:
        """Closed with probability 1.0."""
        return self.is_closed and self.probability == 1.0

    @property
    def status(self) -> ReferralStatus:
        """The referral status a deal in this stage implies."""
        if not self.is_closed:
            return ReferralStatus.OPPORTUNITY
        return ReferralStatus.CLOSED_WON if self.won else ReferralStatus.CLOSED_LOST


def _stage(pipeline_id: str, raw: dict[str, Any]) -> Stage:
    meta = raw.get("metadata") or {}
    try:
        probability: float | None = float(str(meta.get("probability")))
    except (TypeError, ValueError):
        probability = None
    return Stage(
        id=str(raw["id"]), pipeline_id=pipeline_id, label=str(raw.get("label", "")),
        display_order=int(raw.get("displayOrder") or 0),
        is_closed=str(meta.get("isClosed", "false")).lower() == "true",
        probability=probability,
    )


class PipelineCache:
    """Deal stages by id, read once per ``ttl`` seconds."""

    def __init__(self, client: HubSpotClient, *, ttl: float = 3600.0, min_refresh: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._monotonic = monotonic
        self._stages: dict[str, Stage] = {}
        self._pipelines: list[tuple[int, str]] = []
        self._loaded_at: float | None = None

    def _load(self) -> None:
        reply = self._client.call("pipelines.get_all", self._client.pipelines.get_all, "deals")
        stages, pipelines = {}, []
        for pipeline in reply.json().get("results", []):
            if pipeline.get("archived"):
                continue
            pid = str(pipeline["id"])
            pipelines.append((int(pipeline.get("displayOrder") or 0), pid))
            for raw in pipeline.get("stages", []):
                if not raw.get("archived"):
                    stages[str(raw["id"])] = _stage(pid, raw)
        self._stages, self._pipelines = stages, sorted(pipelines)
        self._loaded_at = self._monotonic()

    def _fresh(self, *, miss: bool = False) -> None:
        now = self._monotonic()
        age = None if self._loaded_at is None else now - self._loaded_at
        if age is None or age > self._ttl or (miss and age > self._min_refresh):
            self._load()

    def stage(self, stage_id: str) -> Stage | None:
        """The stage with ``stage_id`` (refreshing the cache on a miss), if it exists."""
        self._fresh()
        if stage_id not in self._stages:
            self._fresh(miss=True)
        return self._stages.get(stage_id)

    def status_of(self, deal: dict[str, Any]) -> ReferralStatus:
        """The referral status a deal's properties imply.

        Stage metadata decides; HubSpot's own ``hs_is_closed_won``/``hs_is_closed`` are the
        fallback for a stage we cannot see (archived since, or a pipeline we cannot read)."""
        stage = self.stage(str(deal.get("dealstage") or ""))
        if stage is not None:
            return stage.status
        if str(deal.get("hs_is_closed_won", "")).lower() == "true":
            return ReferralStatus.CLOSED_WON
        if str(deal.get("hs_is_closed", "")).lower() == "true":
            return ReferralStatus.CLOSED_LOST
        return ReferralStatus.OPPORTUNITY

    def entry_stage(self, pipeline_id: str | None = None) -> Stage:
        """The first open stage of ``pipeline_id`` (default: the ``default`` pipeline, else
        the first by display order): where a new referral deal starts."""
        self._fresh()
        ids = [pid for _, pid in self._pipelines]
        wanted = pipeline_id or ("default" if "default" in ids else (ids[0] if ids else None))
        open_stages = sorted((s for s in self._stages.values()
                              if s.pipeline_id == wanted and not s.is_closed),
                             key=lambda s: s.display_order)
        if not open_stages:
            raise ConfigurationError(f"HubSpot deal pipeline {wanted!r} has no open stage")
        return open_stages[0]
