"""The engine never freezes the event loop of the application that embeds it.

While another connection holds the SQLite write lock (PostgreSQL: a ``LOCK TABLE`` on
the instances table) for 1.5 s, a workflow is started in the engine's loop: a 10 ms
ticker in the same loop must keep ticking (no gap over 100 ms), and the workflow
completes once the lock is released. On the storage of the first wave, the loop
stood still for the whole 1.5 s (1 552 ms measured on SQLite).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import durably
from durably.domain.results import ok
from durably.engine import Engine
from tests.integration.pg_support import acquire_database, drop_schema, engine_url, release_database

pytestmark = pytest.mark.timeout(60)

HOLD_S = 1.5
TICK_S = 0.01
LONGEST_GAP_S = 0.1


@durably.workflow
async def three_steps(n: int) -> int:
    a = await durably.step("a", lambda: n)
    b = await durably.step("b", lambda: a + 1)
    return await durably.step("c", lambda: b + 1)


class Ticker:
    """A task that ticks every ``TICK_S`` and records the longest gap between ticks."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            self.ticks += 1
            last = now

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@contextmanager
def sqlite_write_lock(path: Path, taken: threading.Event) -> Iterator[None]:
    """Another connection holds the database's write lock for ``HOLD_S``."""

    def hold() -> None:
        conn = sqlite3.connect(str(path), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            taken.set()
            time.sleep(HOLD_S)
            conn.execute("COMMIT")
        finally:
            conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(HOLD_S + 5)


@contextmanager
def postgres_table_lock(dsn: str, schema: str, taken: threading.Event) -> Iterator[None]:
    """Another session holds ``LOCK TABLE instances`` for ``HOLD_S``."""

    def hold() -> None:
        with psycopg.connect(dsn) as conn:
            table = sql.SQL("{}.instances").format(sql.Identifier(schema))
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
            taken.set()
            time.sleep(HOLD_S)
            conn.commit()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(HOLD_S + 5)


Locker = Callable[[threading.Event], AbstractContextManager[None]]


@asynccontextmanager
async def backend(kind: str, tmp_path: Path) -> AsyncIterator[tuple[str, Locker]]:
    """A backend URL and the context manager that locks it from another connection."""
    if kind == "sqlite":
        path = tmp_path / "lag.db"
        yield f"sqlite:///{path}", lambda taken: sqlite_write_lock(path, taken)
        return
    dsn = acquire_database()
    schema = f"lag_{int(time.time() * 1000) % 10**9}"
    try:
        yield engine_url(dsn, schema), lambda taken: postgres_table_lock(dsn, schema, taken)
    finally:
        await asyncio.to_thread(drop_schema, dsn, schema)
        release_database()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_locked_database_never_stops_the_loop(kind: str, tmp_path: Path) -> None:
    async with backend(kind, tmp_path) as (url, lock), Engine([three_steps], backend=url) as engine:
        taken = threading.Event()
        with lock(taken), Ticker() as ticker:
            assert await asyncio.to_thread(taken.wait, 5)
            started = time.monotonic()
            result = ok(await engine.start(three_steps, 1, id="lagged"))
            took = time.monotonic() - started
        assert result.completed
        assert result.output == 3
        # It waited for the lock (the commit could not land before)...
        assert took >= HOLD_S * 0.5, f"done in {took:.3f}s: the lock did not hold it"
        # ...and the loop kept its other work going meanwhile.
        assert ticker.ticks >= 10
        assert ticker.longest < LONGEST_GAP_S, f"the loop stood still for {ticker.longest:.3f}s"
