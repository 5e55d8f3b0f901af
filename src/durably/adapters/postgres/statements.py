"""The connections of one-statement commits: one through the event loop, one blocking.

A commit that is one statement (``steps.py``, ``single.py``) runs in autocommit on a
connection of its own, where it is prepared once with a generic plan: planned per
call, it would cost about as much as running it. When nothing else is ready to run,
the host runs it on a blocking connection instead, without leaving the event loop:
waiting on the socket through the loop costs about 0.1 ms of CPU per statement more
(measured side by side: 0.12-0.14 against 0.21-0.24 ms).

The loop must never be held for long, so a blocking statement that waits for a row
lock longer than ``LOCK_WAIT_MS``, or runs longer than ``LONGEST_BLOCKING_MS``, is
cancelled by the server (nothing written) and runs again through the loop; a blocking
connection that cannot be opened within ``CONNECT_TIMEOUT_S`` is not tried again for
``RETRY_AFTER_S``, and the statements go through the loop meanwhile.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from durably.domain.errors import StorageError

__all__ = [
    "StatementConnections",
    "LOCK_WAIT_MS",
    "LONGEST_BLOCKING_MS",
    "CONNECT_TIMEOUT_S",
    "RETRY_AFTER_S",
]

LOCK_WAIT_MS = 50
LONGEST_BLOCKING_MS = 1_000
CONNECT_TIMEOUT_S = 2
RETRY_AFTER_S = 5.0


class StatementConnections:
    """Runs one statement in autocommit (its own transaction) for a ``PostgresHost``."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._through_loop: psycopg.AsyncConnection[Any] | None = None
        self._blocking: psycopg.Connection[Any] | None = None
        self.last_turn = float("-inf")
        """When a statement last waited through the event loop (the loop had turns)."""
        self._blocking_from = float("-inf")
        """No blocking connection is tried before this time (it could not be opened)."""

    async def run(
        self, query: str, params: dict[str, Any], *, blocking: bool
    ) -> list[tuple[Any, ...]]:
        """The rows of ``query``; ``StorageError`` when it fails (nothing known written)."""
        if blocking:
            rows = self.run_blocking(query, params)
            if rows is not None:
                return rows
        conn = self._through_loop
        try:
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                await conn.execute("SET plan_cache_mode = force_generic_plan")
                self._through_loop = conn
            cur = await conn.execute(query, params, prepare=True)
            rows = await cur.fetchall()
        except psycopg.Error as e:
            if conn is not None and conn.broken:
                self._through_loop = None  # reconnect at the next commit
            raise StorageError("commit", None, e) from e
        self.last_turn = time.monotonic()
        return rows

    def run_blocking(
        self, query: str, params: Any, *, operation: str = "commit"
    ) -> list[tuple[Any, ...]] | None:
        """The rows of ``query`` run on the blocking connection; ``None`` when it must run
        through the loop instead (nothing written): it would have waited for a row lock or
        run too long (cancelled by the server), or the connection cannot be opened."""
        conn = self._blocking
        if conn is None or conn.closed:
            if time.monotonic() < self._blocking_from:
                return None  # it could not be opened a moment ago: through the loop
            conn = self._open_blocking()
            if conn is None:
                return None
        try:
            return conn.execute(query, params, prepare=True).fetchall()
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled):
            return None
        except psycopg.Error as e:
            if conn is not None and conn.broken:
                conn.close()
                self._blocking = None  # reconnect at the next statement
            raise StorageError(operation, None, e) from e

    def _open_blocking(self) -> psycopg.Connection[Any] | None:
        """Open the blocking connection; ``None`` (and no new try for a while) if it fails."""
        conn = None
        try:
            conn = psycopg.Connection.connect(
                self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
            conn.execute("SET plan_cache_mode = force_generic_plan")
            conn.execute(f"SET lock_timeout = {LOCK_WAIT_MS}")
            conn.execute(f"SET statement_timeout = {LONGEST_BLOCKING_MS}")
        except psycopg.Error:
            if conn is not None:
                conn.close()
            self._blocking_from = time.monotonic() + RETRY_AFTER_S
            return None
        self._blocking = conn
        return conn

    async def close(self) -> None:
        """Close both connections."""
        if self._through_loop is not None:
            await self._through_loop.close()
            self._through_loop = None
        if self._blocking is not None:
            self._blocking.close()
            self._blocking = None
