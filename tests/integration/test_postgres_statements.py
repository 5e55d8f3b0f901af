"""The blocking connection of one-statement commits never holds the event loop for long.

A statement run there without leaving the loop is cancelled by the server when it
would wait for a row lock or run too long (nothing is written), and runs again through
the loop; a blocking connection that cannot be opened is not tried again for a while.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from tests.integration.pg_support import acquire_database, release_database

from durably.adapters.postgres import statements
from durably.adapters.postgres.statements import StatementConnections

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def dsn() -> Any:
    yield acquire_database()
    release_database()


async def test_a_statement_that_runs_too_long_goes_back_through_the_loop(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statements, "LONGEST_BLOCKING_MS", 100)
    conns = StatementConnections(dsn)
    try:
        started = time.monotonic()
        assert conns.run_blocking("SELECT pg_sleep(0.3)", {}) is None  # cancelled at 0.1 s
        assert time.monotonic() - started < 0.29
        assert conns.run_blocking("SELECT 1", {}) == [(1,)]  # the connection still serves
        rows = await conns.run("SELECT 2 FROM pg_sleep(0.3)", {}, blocking=True)
        assert rows == [(2,)]  # run again through the loop, to its end
    finally:
        await conns.close()


async def test_a_blocking_connection_that_cannot_be_opened_is_not_tried_again_for_a_while(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conns = StatementConnections(dsn)
    tries: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        tries.append("connect")
        raise psycopg.OperationalError("connection refused (test)")

    monkeypatch.setattr(psycopg.Connection, "connect", refuse)
    try:
        assert await conns.run("SELECT 1", {}, blocking=True) == [(1,)]  # through the loop
        assert await conns.run("SELECT 2", {}, blocking=True) == [(2,)]
        assert conns.run_blocking("SELECT 4", {}, operation="read") is None  # reads too
        assert tries == ["connect"]  # once, not at every statement
        monkeypatch.setattr(conns, "_blocking_from", time.monotonic() - 1)  # time passed
        assert await conns.run("SELECT 3", {}, blocking=True) == [(3,)]
        assert tries == ["connect", "connect"]
    finally:
        await conns.close()
