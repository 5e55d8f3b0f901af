"""How fast a delivered event reaches its waiting workflow: at once in the same process,
at once from another engine on PostgreSQL (``NOTIFY``), within the poll interval from
another engine on SQLite. The bounds only prove that nothing waits for a poll that
should not: each is ten times (or more) what the wake-up takes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import durably
from durably.engine import Engine
from tests.integration.pg_support import acquire_database, drop_schema, engine_url, release_database

pytestmark = pytest.mark.timeout(90)


@durably.workflow
async def gate(n: int) -> int:
    payload = await durably.wait_for_event("open")
    return int(payload) + n


@asynccontextmanager
async def working(engine: Engine) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(engine.run_worker(stop=stop))
    try:
        yield
    finally:
        stop.set()
        await task


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    dsn = acquire_database()
    schema = f"wakeups_{time.monotonic_ns() % 10**9}"
    try:
        yield engine_url(dsn, schema)
    finally:
        await asyncio.to_thread(drop_schema, dsn, schema)
        release_database()


async def test_in_the_same_process_the_worker_takes_it_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    async with Engine([gate], backend=url, poll_interval="30s") as engine, working(engine):
        (await engine.start(gate, 1, id="g")).unwrap()
        await asyncio.sleep(0.1)  # the worker is waiting for its next poll, 30 s away
        began = time.monotonic()
        assert (await engine.send_event("g", "open", 41)).unwrap().delivered
        assert (await engine.result("g", timeout="10s")).unwrap() == 42
        assert time.monotonic() - began < 3


async def test_from_another_engine_on_postgresql_notify_wakes_the_worker(pg_url: str) -> None:
    async with (
        Engine([gate], backend=pg_url, poll_interval="30s") as worker,
        Engine([gate], backend=pg_url) as sender,
        working(worker),
    ):
        (await sender.start(gate, 1, id="g")).unwrap()
        await asyncio.sleep(0.2)  # the worker is listening, its next poll 30 s away
        began = time.monotonic()
        assert (await sender.send_event("g", "open", 41)).unwrap().delivered
        assert (await worker.result("g", timeout="10s")).unwrap() == 42
        assert time.monotonic() - began < 3


async def test_from_another_engine_on_sqlite_within_the_poll_interval(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'two.db'}"
    async with (
        Engine([gate], backend=url, poll_interval="200ms") as worker,
        Engine([gate], backend=url) as sender,
        working(worker),
    ):
        (await sender.start(gate, 1, id="g")).unwrap()
        began = time.monotonic()
        assert (await sender.send_event("g", "open", 41)).unwrap().delivered
        assert (await worker.result("g", timeout="10s")).unwrap() == 42
        assert time.monotonic() - began < 5
