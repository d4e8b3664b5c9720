"""Engine creation for the operational store: SQLite in WAL mode, or PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from referral_sync.errors import ConfigurationError


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite would otherwise issue its own deferred BEGIN; ``_sqlite_begin`` does it instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # busy_timeout turns "database is locked" into a short wait when two writers meet.
    cursor.execute("PRAGMA busy_timeout=10000")
    # WAL lets the web process read while the worker writes. Switching a new database to
    # WAL upgrades a read lock to a write lock, which SQLite refuses at once (no busy wait)
    # when another process is starting too; so try again for a while.
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


#: Longest wait for the in-process lock below before giving up (like busy_timeout).
_LOCK_TIMEOUT = 30.0


class _ProcessLock:
    """Serialises this process's SQLite transactions in Python.

    SQLite admits one writer; threads of one process that meet at ``BEGIN IMMEDIATE`` fall
    into SQLite's busy handler, which sleeps in growing steps (up to 100 ms) and so turns a
    burst of webhooks into long tails. Waiting on a Python lock instead hands the database
    to the next thread the moment the previous one is done. Other processes still meet at
    SQLite's own lock. The lock is held from a connection's first BEGIN until the
    connection goes back to the pool.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def begin(self, conn: sa.Connection) -> None:
        info = conn.connection.info  # the pooled connection's record, shared with checkin
        if not info.get("process_lock"):
            if not self._lock.acquire(timeout=_LOCK_TIMEOUT):
                raise TimeoutError("the SQLite store stayed busy; another thread holds it")
            info["process_lock"] = True
        # pysqlite's deferred BEGIN upgrades to a write lock mid-transaction, which fails
        # instantly under contention; BEGIN IMMEDIATE waits (busy_timeout) for the lock.
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self._release(info)
            raise

    def checkin(self, _dbapi_connection: Any, record: Any) -> None:
        self._release(record.info)

    def _release(self, info: dict[str, Any]) -> None:
        if info.pop("process_lock", False):
            self._lock.release()


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://…``).

    Raises:
        ConfigurationError: for an unsupported or malformed URL.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"database URL is not valid: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        lock = _ProcessLock()
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", lock.begin)
        sa.event.listen(engine, "checkin", lock.checkin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    raise ConfigurationError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql+psycopg://"
    )
