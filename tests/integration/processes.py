"""What the multi-process tests share: a backend URL per kind, child workers, side logs.

The trial counts of the fault tests come from ``trials``: a few in ``make test``, the
full counts in ``make chaos`` (which sets ``DURABLY_CHAOS=1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from durably.domain.results import ok
from durably.domain.status import is_terminal
from durably.engine import Engine
from tests.integration.pg_support import acquire_database, drop_schema, engine_url, release_database
from tests.integration.support import ChildProcess, db_url, read_lines, spawn

__all__ = [
    "CHAOS",
    "trials",
    "backend_url",
    "workers",
    "step_lines",
    "wait_for_line_count",
    "wait_until_terminal",
]

CHAOS = os.environ.get("DURABLY_CHAOS") == "1"


def trials(quick: int, chaos: int) -> list[int]:
    """Trial numbers: ``quick`` of them in ``make test``, ``chaos`` in ``make chaos``."""
    return list(range(chaos if CHAOS else quick))


@contextlib.asynccontextmanager
async def backend_url(kind: str, folder: Path, name: str) -> AsyncIterator[str]:
    """A fresh backend of ``kind`` (``sqlite`` file in ``folder``, or a PostgreSQL schema)."""
    if kind == "sqlite":
        yield db_url(folder / f"{name}.db")
        return
    dsn = acquire_database()
    schema = f"{name}_{os.getpid()}_{time.monotonic_ns() % 10**9}"
    try:
        yield engine_url(dsn, schema)
    finally:
        await asyncio.to_thread(drop_schema, dsn, schema)
        release_database()


@contextlib.contextmanager
def workers(url: str, folder: Path, count: int = 1) -> Iterator[list[ChildProcess]]:
    """``count`` worker processes (``worker_child.py``) on ``url``, killed at the end."""
    children = [spawn("worker_child.py", [url], folder) for _ in range(count)]
    try:
        for child in children:
            child.expect("ready")
        yield children
    finally:
        for child in children:
            child.kill()


def step_lines(side: Path, kind: str = "start") -> list[tuple[int, int, float]]:
    """``(step, pid, wall time)`` of every ``kind`` line (``start``/``end``) of a side file."""
    found = []
    for line in read_lines(side):
        what, index, pid, at = line.split()
        if what == kind:
            found.append((int(index), int(pid), float(at)))
    return found


async def wait_for_line_count(
    side: Path, kind: str, pid: int | None, count: int, within: float = 30
) -> list[tuple[int, int, float]]:
    """Wait until the side file has ``count`` ``kind`` lines (of ``pid``, if given)."""
    deadline = time.monotonic() + within
    while True:
        lines = [s for s in step_lines(side, kind) if pid is None or s[1] == pid]
        if len(lines) >= count:
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} {kind} lines never came; side file: {read_lines(side)}")
        await asyncio.sleep(0.01)


async def wait_until_terminal(engine: Engine, iid: str, within: float) -> float:
    """Wait until ``iid`` is terminal; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        status = ok(await engine.status(iid)).status
        if status is not None and is_terminal(status):
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"{iid} did not end within {within}s: {ok(await engine.status(iid))}")
