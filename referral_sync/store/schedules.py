"""Claims on periodic tasks, so any number of nodes can tick while each task runs about once
per interval across all of them."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from referral_sync.store.tables import schedules


class Schedules:
    """``last_run_at`` per periodic task; moving it forward is the claim."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def claim(self, name: str, now: datetime, every_seconds: float) -> bool:
        """True when task ``name`` is due (not run within ``every_seconds``) and this caller
        won the right to run it now."""
        due_before = now - timedelta(seconds=every_seconds)
        with self._engine.begin() as conn:
            moved = conn.execute(
                schedules.update()
                .where(schedules.c.name == name, schedules.c.last_run_at <= due_before)
                .values(last_run_at=now)
            ).rowcount
            if moved:
                return True
            exists = conn.execute(
                sa.select(schedules.c.name).where(schedules.c.name == name)).first()
            if exists:
                return False
        try:
            with self._engine.begin() as conn:
                conn.execute(schedules.insert().values(name=name, last_run_at=now))
        except sa.exc.IntegrityError:
            return False  # another node claimed the first run
        return True

    def last_run(self, name: str) -> datetime | None:
        """When task ``name`` last ran (was claimed)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(schedules.c.last_run_at).where(schedules.c.name == name)).first()
        return row.last_run_at if row else None
