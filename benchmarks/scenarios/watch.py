"""Watching a run finish from outside the engine: a thread of the harness counts the
completed workflows with one ``SELECT count(*)`` over a connection of its own, every
``every_s``, until the expected number have completed.

It loads the engine under test with nothing (no call into its API, no connection of
its pool, no time on its event loop or its threads) and costs the same for every
engine: one point query per check. Its statements are not counted by ``counting.py``
(its thread is ``quiet``, and on SQLite its connection is not traced).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from scenarios import counting
from scenarios.common import DEADLINE_S, Target


class Watcher:
    """A thread that counts completed workflows every ``every_s`` over a connection of
    its own (not counted on the client side) until ``expected`` have completed."""

    def __init__(
        self, target: Target, count_sql: str, sqlite_file: str, expected: int, every_s: float
    ) -> None:
        self.target, self.sql, self.file, self.expected = target, count_sql, sqlite_file, expected
        self.every_s = every_s
        self.queries = 0
        self.finished_at: float | None = None
        """``time.perf_counter()`` when the last check saw every workflow completed."""
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _watch(self) -> None:
        counting.quiet()
        try:
            if self.target.dsn is not None:
                import psycopg

                with psycopg.connect(self.target.dsn, autocommit=True) as conn:
                    self._loop(lambda: conn.execute(self.sql).fetchone())
            else:
                conn = counting.ORIGINAL_SQLITE_CONNECT(self.file, timeout=30)
                try:
                    self._loop(lambda: conn.execute(self.sql).fetchone())
                finally:
                    conn.close()
        except BaseException as e:  # reported by wait()
            self.error = e
            self.done.set()

    def _loop(self, count: Callable[[], Any]) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            self.queries += 1
            row = count()
            if row is not None and int(row[0]) >= self.expected:
                self.finished_at = time.perf_counter()
                self.done.set()
                return
            time.sleep(self.every_s)
        raise RuntimeError(f"not all {self.expected} workflows completed in {DEADLINE_S}s")

    def wait(self) -> None:
        self.done.wait()
        if self.error is not None:
            raise self.error
