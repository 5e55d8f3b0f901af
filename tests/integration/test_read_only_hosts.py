"""Opening a backend read-only: nothing is created, migrated or written.

The hosts (``SqliteHost(read_only=True)``, ``PostgresHost(read_only=True)``) refuse a
store that does not exist, is not durably's or has another schema version, and answer
reads on one that is; ``Engine(read_only=True)`` refuses every operation that writes.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from returns.result import Failure

import durably
from durably.adapters.postgres import PostgresHost
from durably.adapters.sqlite import SqliteHost
from durably.adapters.sqlite.schema import MIGRATIONS
from durably.domain import keys
from durably.domain.errors import StorageError
from durably.domain.results import ok
from durably.domain.status import Completed
from durably.engine import Engine
from tests.integration.pg_support import (
    drop_schema,
    engine_url,
    pg_database,  # noqa: F401 - the session's database
)

pytestmark = pytest.mark.timeout(60)


@durably.workflow
async def greet(name: str) -> str:
    """One step."""
    return await durably.step("hello", lambda: f"hello {name}")


def _tables(path: Path) -> tuple[int, list[str]]:
    conn = sqlite3.connect(path)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        names = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master"))
    finally:
        conn.close()
    return version, names


async def _durably_db(path: Path) -> None:
    async with Engine([greet], backend=f"sqlite:///{path}") as engine:
        (await engine.start(greet, "Ada", id="g-1")).unwrap()


async def _refused(host: SqliteHost | PostgresHost) -> str:
    with pytest.raises(StorageError) as caught:
        await host.open()
    return str(caught.value.cause)


# -- SQLite ---------------------------------------------------------------------------------


async def test_sqlite_read_only_open_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    assert await _refused(SqliteHost(str(path), read_only=True)) == f"no such database: {path}"
    assert os.listdir(tmp_path) == []


async def test_sqlite_read_only_open_of_a_foreign_file_leaves_it_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crm.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    refused = await _refused(SqliteHost(str(path), read_only=True))
    assert refused == f"not a durably database: {path}"
    assert path.read_bytes() == before
    assert _tables(path) == (0, ["customers"])


@pytest.mark.parametrize(("version", "word"), [(1, "older"), (99, "newer")])
async def test_sqlite_read_only_open_refuses_another_schema_version(
    tmp_path: Path, version: int, word: str
) -> None:
    path = tmp_path / "versioned.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()
    before = _tables(path)
    refused = await _refused(SqliteHost(str(path), read_only=True))
    assert word in refused
    assert f"version {version}" in refused
    assert _tables(path) == before  # not migrated


async def test_sqlite_read_only_host_reads_and_its_writes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "durably.db"
    await _durably_db(path)
    before = _tables(path)
    host = SqliteHost(str(path), read_only=True)
    await host.open()
    try:
        row = await host.instance("g-1")
        assert row is not None
        assert row.status == "Completed"
        assert await host.read("g-1", keys.OUTPUT) == '"hello Ada"'
        written = await host.runtime("g-2").storage.put(keys.NAME, "greet")
        assert isinstance(written, Failure)
        assert "readonly" in str(written.failure())
    finally:
        await host.close()
    assert _tables(path) == before
    assert await _read_only_engine_sees(f"sqlite:///{path}") == "Completed"


async def _read_only_engine_sees(backend: str) -> str:
    """What a read-only Engine answers about ``g-1``, after checking it refuses to write."""
    async with Engine([greet], backend=backend, read_only=True) as engine:
        status = (await engine.status("g-1")).unwrap().status
        assert status is not None
        assert [s.name for s in (await engine.steps("g-1")).unwrap()] == ["hello"]
        assert [s.id for s in (await engine.list()).unwrap()] == ["g-1"]
        assert (await engine.result("g-1")).unwrap() == "hello Ada"
        assert [s.id for s in (await engine.purge_candidates()).unwrap()] == ["g-1"]
        for write in (
            lambda: engine.start(greet, "Bo", id="g-2"),
            lambda: engine.queue(greet, "Bo", id="g-2"),
            lambda: engine.cancel("g-1"),
            lambda: engine.purge(),
            lambda: engine.run_until_idle(),
            lambda: engine.run_worker(),
        ):
            with pytest.raises(RuntimeError, match="read-only"):
                await write()
        return status.tag


async def test_a_read_only_memory_engine_is_an_empty_engine_that_refuses_writes() -> None:
    async with Engine([greet], backend="memory://", read_only=True) as engine:
        assert (await engine.list()).unwrap() == []
        with pytest.raises(RuntimeError, match="read-only"):
            await engine.start(greet, "Ada")


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
async def schema(pg_database: str) -> AsyncIterator[tuple[str, str]]:  # noqa: F811
    name = f"ro_{uuid.uuid4().hex[:10]}"
    yield pg_database, name
    drop_schema(pg_database, name)


def _schema_exists(dsn: str, name: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone()
    return row is not None


async def test_postgres_read_only_open_of_a_missing_schema_creates_nothing(
    schema: tuple[str, str],
) -> None:
    dsn, name = schema
    refused = await _refused(PostgresHost(dsn, schema=name, read_only=True))
    assert f"no durably schema {name!r}" in refused
    assert refused.startswith("PostgreSQL at ")
    assert not _schema_exists(dsn, name)


async def test_postgres_read_only_host_reads_an_existing_schema(
    schema: tuple[str, str],
) -> None:
    dsn, name = schema
    url = engine_url(dsn, name)
    async with Engine([greet], backend=url) as engine:
        (await engine.start(greet, "Ada", id="g-1")).unwrap()
    host = PostgresHost(dsn, schema=name, read_only=True)
    await host.open()
    try:
        row = await host.instance("g-1")
        assert row is not None
        assert row.status == "Completed"
    finally:
        await host.close()
    assert await _read_only_engine_sees(url) == "Completed"


async def test_postgres_read_only_open_refuses_a_newer_schema(schema: tuple[str, str]) -> None:
    dsn, name = schema
    async with Engine([greet], backend=engine_url(dsn, name)):
        pass
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"UPDATE {name}.schema_version SET version = 99")
    refused = await _refused(PostgresHost(dsn, schema=name, read_only=True))
    assert "newer" in refused
    assert "version 99" in refused


async def test_a_purged_instance_is_still_read_by_a_read_only_engine(tmp_path: Path) -> None:
    path = tmp_path / "durably.db"
    await _durably_db(path)
    async with Engine([greet], backend=f"sqlite:///{path}") as engine:
        assert (await engine.purge()).unwrap() == 1
    async with Engine([greet], backend=f"sqlite:///{path}", read_only=True) as engine:
        status = ok(await engine.status("g-1")).status
        assert isinstance(status, Completed)
        assert (await engine.purge_candidates()).unwrap() == []
