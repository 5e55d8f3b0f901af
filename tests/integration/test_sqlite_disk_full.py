"""A full disk under SQLite is reported as a full disk, whatever statement meets it.

Two ways to fill the disk without filling one: ``PRAGMA max_page_count`` lowered on the
engine's own connection (SQLite answers ``SQLITE_FULL`` when a write needs a new page),
and a connection that behaves as SQLite does when the disk fills during a ``COMMIT`` (the
transaction is rolled back, then ``SQLITE_FULL`` is reported) or while the WAL index grows
(``SQLITE_IOERR_SHMSIZE``, a bare "disk I/O error"). Both were seen on a real full
filesystem (a 256 KiB tmpfs) when a new database was opened.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import durably
from durably.adapters.sqlite import SqliteHost
from durably.domain.errors import OrchestratorError, StorageError
from durably.domain.status import Running
from durably.engine import Engine
from tests.integration.support import db_url

pytestmark = pytest.mark.timeout(60)

SQLITE_IOERR_SHMSIZE = 4874  # SQLITE_IOERR | (19 << 8)


@durably.workflow
async def ledger(size: int) -> int:
    await durably.step("open", lambda: "opened")
    await durably.step("append", lambda: "x" * size)
    return size


def _full(name: str = "SQLITE_FULL", code: int = sqlite3.SQLITE_FULL) -> sqlite3.OperationalError:
    message = "database or disk is full" if code == sqlite3.SQLITE_FULL else "disk I/O error"
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    error.sqlite_errorname = name
    return error


def full_at_first_commit() -> type[sqlite3.Connection]:
    """Connections on a disk that fills while the first ``COMMIT`` writes: SQLite rolls
    the transaction back by itself, then reports ``SQLITE_FULL``."""
    failed = False

    class FullAtFirstCommit(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            nonlocal failed
            if sql == "COMMIT" and not failed:
                failed = True
                super().execute("ROLLBACK")
                raise _full()
            return super().execute(sql, *args)

    return FullAtFirstCommit


class ShmCannotGrow(sqlite3.Connection):
    """The disk is full when the WAL index (``-shm``) must grow."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.startswith("PRAGMA journal_mode"):
            raise _full("SQLITE_IOERR_SHMSIZE", SQLITE_IOERR_SHMSIZE)
        return super().execute(sql, *args)


def connect_with(monkeypatch: pytest.MonkeyPatch, factory: type[sqlite3.Connection]) -> None:
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return real(*args, **kwargs, factory=factory)

    monkeypatch.setattr(sqlite3, "connect", connect)


async def test_a_disk_full_while_a_new_database_is_created_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect_with(monkeypatch, full_at_first_commit())
    db = tmp_path / "new.db"
    with pytest.raises(StorageError) as caught:
        async with Engine([ledger], backend=db_url(db)):
            pytest.fail("opened a database whose creation failed")
    message = str(caught.value)
    assert message == f"storage open failed: SQLite database {db}: database or disk is full"
    assert "cannot rollback" not in message
    monkeypatch.undo()
    # Nothing half-made stays behind: the next open creates the schema and works.
    async with Engine([ledger], backend=db_url(db)) as engine:
        assert (await engine.run(ledger, 3, id="l1")).unwrap() == 3


async def test_a_wal_index_that_cannot_grow_is_named_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect_with(monkeypatch, ShmCannotGrow)
    db = tmp_path / "new.db"
    with pytest.raises(StorageError) as caught:
        async with Engine([ledger], backend=db_url(db)):
            pytest.fail("opened a database whose WAL index could not grow")
    message = str(caught.value)
    assert "disk I/O error" in message  # SQLite's words, kept
    assert "SQLITE_IOERR_SHMSIZE" in message
    assert "database or disk is full" in message  # and what they mean


async def test_a_disk_full_at_a_step_commit_says_so_and_keeps_the_last_commit(
    tmp_path: Path,
) -> None:
    db = tmp_path / "full.db"
    async with Engine([ledger], backend=db_url(db)) as engine:
        host = engine.host
        assert isinstance(host, SqliteHost)

        def cap(conn: sqlite3.Connection) -> int:
            pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
            conn.execute(f"PRAGMA max_page_count = {pages + 2}")
            return pages

        pages = host.db.run_now(cap)
        started = await engine.start(ledger, 200_000, id="big")  # 49 pages for the value
        error = started.failure()
        assert isinstance(error, OrchestratorError)
        assert "database or disk is full" in str(error)
        assert "cannot rollback" not in str(error)
        status = (await engine.status("big")).unwrap()
        assert isinstance(status.status, Running)  # as its last commit left it
        assert status.completed_steps == ("open",)

        # Space comes back: the same connection commits again (no transaction left open).
        host.db.run_now(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages * 100}"))
        assert (await engine.run(ledger, 10, id="small")).unwrap() == 10
