"""Commands that only read never create, migrate or change a store.

``list``, ``show``, ``status``, ``get-event`` and ``purge --dry-run`` on a mistyped path
create no file, on another application's SQLite file leave it byte for byte as it was,
and can inspect a database that is read-only (its file, or its directory). ``cancel``,
``send`` and ``purge`` create nothing either. On PostgreSQL, a missing schema is an
error and is not created.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.acceptance.cli_process import Ran, durably, without_file_permission_override
from tests.integration.pg_support import (
    drop_schema,
    engine_url,
    pg_database,  # noqa: F401 - the session's database
)

APP = """
import durably


@durably.workflow
async def greet(name: str) -> str:
    await durably.set_event("greeting", f"hello {name}")
    return await durably.step("hello", lambda: f"hello {name}")


workflows = [greet]
"""

READING = {
    "list": ["list"],
    "status": ["status", "g-1"],
    "show": ["show", "g-1"],
    "purge-dry-run": ["purge", "--all", "--dry-run"],
    "get-event": ["get-event", "g-1", "greeting"],
    "queues": ["queues"],
}
WRITING = {
    "cancel": ["cancel", "g-1"],
    "send": ["send", "g-1", "greeting"],
    "purge": ["purge", "--all"],
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "ro_app.py").write_text(APP, encoding="utf-8")
    return tmp_path


def files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def snapshot(path: Path) -> tuple[bytes, int, int]:
    """The file's bytes, modification time and mode."""
    info = path.stat()
    return path.read_bytes(), info.st_mtime_ns, info.st_mode


def make_durably_database(folder: Path) -> Path:
    """``durably.db`` in ``folder`` with one completed instance ``g-1``."""
    started = durably(
        "start", "greet", "--input", '"Ada"', "--id", "g-1", "--app", "ro_app:workflows",
        "--backend", "sqlite:///durably.db", cwd=folder,
    )  # fmt: skip
    assert started.code == 0, started.err
    return folder / "durably.db"


@pytest.mark.parametrize("argv", [*READING.values(), *WRITING.values()], ids=[*READING, *WRITING])
def test_a_mistyped_path_creates_nothing(folder: Path, argv: list[str]) -> None:
    before = files(folder)
    ran = durably(*argv, "--backend", "sqlite:///tpyo.db", cwd=folder)
    assert ran.code == 1
    assert ran.error_line() == "no such database: tpyo.db"
    assert files(folder) == before  # no tpyo.db, no -wal, no -shm


def test_a_mistyped_absolute_path_is_named_whole(folder: Path) -> None:
    path = folder / "elsewhere" / "tpyo.db"
    ran = durably("show", "g-1", "--backend", f"sqlite:///{path}", cwd=folder)
    assert ran.code == 1
    assert ran.error_line() == f"no such database: {path}"
    assert not path.parent.exists()


def _foreign(path: Path) -> None:
    """Another application's SQLite database (rollback journal, like most)."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("argv", [*READING.values(), *WRITING.values()], ids=[*READING, *WRITING])
def test_another_applications_database_is_left_untouched(folder: Path, argv: list[str]) -> None:
    path = folder / "crm.db"
    _foreign(path)
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    before, names = snapshot(path), files(folder)
    ran = durably(*argv, "--backend", "sqlite:///crm.db", cwd=folder)
    assert ran.code == 1
    assert ran.error_line() == "not a durably database: crm.db"
    assert snapshot(path) == before  # same bytes, same mtime
    assert files(folder) == names  # no journal or WAL left behind
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    finally:
        conn.close()
    assert tables == ["customers"]


def test_a_file_that_is_not_a_database_is_not_a_durably_database(folder: Path) -> None:
    path = folder / "notes.txt"
    path.write_text("not a database, just notes\n" * 100, encoding="utf-8")
    before = snapshot(path)
    ran = durably("list", "--backend", "sqlite:///notes.txt", cwd=folder)
    assert ran.code == 1
    assert ran.error_line() == "not a durably database: notes.txt"
    assert snapshot(path) == before


def test_an_unknown_id_in_an_existing_database_is_named(folder: Path) -> None:
    make_durably_database(folder)
    for command in ("status", "show"):
        ran = durably(command, "g-404", "--backend", "sqlite:///durably.db", cwd=folder)
        assert ran.code == 2
        assert ran.error_line() == "no workflow instance with id 'g-404'"


def _cannot_write(path: Path) -> None:
    """The file modes hold in the children of these tests (as root too)."""
    probe = subprocess.run(
        [sys.executable, "-c", f"open({str(path)!r}, 'r+b')"],
        preexec_fn=without_file_permission_override,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode != 0, probe
    assert "Permission denied" in probe.stderr, probe


def _inspect_read_only(folder: Path, database: Path) -> list[Ran]:
    backend = f"sqlite:///{database}"
    return [
        durably(*argv, "--backend", backend, cwd=folder, preexec=without_file_permission_override)
        for argv in READING.values()
    ]


def test_a_read_only_file_can_be_inspected(folder: Path) -> None:
    database = make_durably_database(folder)
    database.chmod(0o444)
    _cannot_write(database)
    before = snapshot(database)
    listed, status, show, dry, got, queues = _inspect_read_only(folder, database)
    assert listed.code == 0, listed.err
    assert "g-1" in listed.out
    assert status.code == 0, status.err
    assert status.out.startswith("g-1  Completed")
    assert show.code == 0, show.err
    assert "hello" in show.out
    assert dry.code == 0, dry.err
    assert dry.out.startswith("would purge 1 instance")
    assert got.code == 0, got.err
    assert got.out == '"hello Ada"\n'
    assert queues.code == 0, queues.err
    assert "default" in queues.out
    assert snapshot(database) == before


def test_a_database_in_a_read_only_directory_can_be_inspected(folder: Path) -> None:
    directory = folder / "frozen"
    directory.mkdir()
    (directory / "ro_app.py").write_text(APP, encoding="utf-8")
    database = make_durably_database(directory)
    names = files(directory)
    database.chmod(0o444)
    directory.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        _cannot_write(database)
        before = snapshot(database)
        results = _inspect_read_only(folder, database)
        for ran in results:
            assert ran.code == 0, ran.err
        assert "g-1" in results[0].out
        assert results[1].out.startswith("g-1  Completed")
        assert snapshot(database) == before
        assert files(directory) == names
    finally:
        directory.chmod(0o755)


# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture
def missing_schema(pg_database: str) -> Iterator[tuple[str, str]]:  # noqa: F811 - the fixture
    name = f"absent_{uuid.uuid4().hex[:10]}"
    yield pg_database, name
    drop_schema(pg_database, name)  # in case a failing run created it


def _schema_exists(dsn: str, name: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone()
    return row is not None


@pytest.mark.parametrize("argv", [*READING.values(), *WRITING.values()], ids=[*READING, *WRITING])
def test_a_missing_postgres_schema_is_an_error_and_is_not_created(
    folder: Path, missing_schema: tuple[str, str], argv: list[str]
) -> None:
    dsn, name = missing_schema
    ran = durably(*argv, "--backend", engine_url(dsn, name), cwd=folder)
    assert ran.code == 1
    line = ran.error_line()
    assert f"no durably schema {name!r}" in line
    assert "database" in line
    assert not _schema_exists(dsn, name)
