"""One SQLite file: a connection that never waits on the event loop, and a thread that may.

Every statement of the SQLite backend goes through ``SqliteDatabase.run(fn)``: ``fn``
runs at once on the loop's connection, whose busy timeout is zero, so it can never wait
for a lock there (a statement that would have to wait fails at once, having done
nothing). Then ``fn`` runs again on the connection of a thread of its own, which waits
up to ``busy_timeout_ms`` for the lock, while the loop goes on. So the host application
keeps its event loop even when another process holds the write lock for seconds; and in
the common case (nobody else writes) a commit costs no hand-off between threads. A
commit that cannot wait, with its fsync, is the one blocking call left on the loop
(``../shared/spec/style.md``, rule 8).

``fn`` must be all or nothing: a write is a ``transaction(conn)`` block, which is
rolled back when anything in it raises.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Final, Literal, TypeVar

from durably.adapters.sqlite.schema import check_schema, migrate
from durably.domain.errors import StorageError

__all__ = ["SqliteDatabase", "Synchronous", "transaction", "is_busy", "explain"]

Synchronous = Literal["FULL", "NORMAL"]
T = TypeVar("T")

_OUT_OF_SPACE: Final[dict[str, str]] = {
    "SQLITE_IOERR_SHMSIZE": "the WAL index (-shm file) could not grow",
}
"""Extended codes that SQLite reports as a bare "disk I/O error" when the disk is full."""


def is_permanent(error: sqlite3.Error) -> bool:
    """Whether SQLite refused the data itself (too big, a type or constraint it cannot take),
    so that the same statement would fail again."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return isinstance(error, sqlite3.DataError)
    return code & 0xFF in (sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_RANGE)


def is_busy(error: sqlite3.Error) -> bool:
    """Whether ``error`` says the database is locked by another connection."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error)


def explain(error: sqlite3.Error) -> sqlite3.Error | str:
    """``error`` as the cause of a ``StorageError``: as it is, unless SQLite says "disk
    I/O error" for what is most likely a full disk; then the cause says so."""
    name = getattr(error, "sqlite_errorname", None)
    reason = _OUT_OF_SPACE.get(name) if isinstance(name, str) else None
    if reason is None:
        return error
    return (
        f"{type(error).__name__}: {error} ({name}: {reason}, most likely: database or disk is full)"
    )


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction: committed when the block ends, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteDatabase:
    """The two connections of one database file (see the module docstring)."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout_ms: int = 10_000,
        read_only: bool = False,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        self.path = path
        self.read_only = read_only
        """Open with ``mode=ro``: never create, migrate or write the file (``open_read_only``)."""
        self._immutable = False
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self._loop_conn: sqlite3.Connection | None = None
        self._thread_conn: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self.schema_version_found: int | None = None
        self._identity: tuple[int, int] | None = None
        """The file's (device, inode) when it was opened."""
        self.waited = 0
        """How many calls had to wait for a lock in the thread (for tests and benchmarks)."""

    def _connect(self, busy_timeout_ms: int) -> sqlite3.Connection:
        target, uri = self.path, False
        if self.read_only:
            quoted = urllib.parse.quote(os.path.abspath(self.path))
            target, uri = f"file:{quoted}?mode=ro{'&immutable=1' if self._immutable else ''}", True
        conn = sqlite3.connect(
            target,
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_timeout_ms / 1000,
            uri=uri,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_in_thread(self) -> None:
        """Connect both, migrate and set WAL; may wait for locks (so: in the thread)."""
        if self.read_only:
            self._open_read_only()
            return
        conn = self._connect(self.busy_timeout_ms)
        try:
            # The schema version is checked before anything else changes the file.
            self.schema_version_found = migrate(conn)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            self._loop_conn = self._connect(0)
        except BaseException:
            conn.close()
            raise
        self._thread_conn = conn
        self._identity = self._stat()

    def _open_read_only(self) -> None:
        """Connect both read-only and check that the file is a durably database of this
        version; nothing is created, migrated or written."""
        if not os.path.exists(self.path):
            raise StorageError("open", None, f"no such database: {self.path}")
        try:
            conn = self._connect_checked()
        except sqlite3.OperationalError as e:
            # A WAL database in a directory we cannot write (no -shm can be made): read it
            # as immutable, a snapshot (docs/decisions.md).
            if getattr(e, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_READONLY:
                raise
            self._immutable = True
            conn = self._connect_checked()
        try:
            self._loop_conn = self._connect(0)
        except BaseException:
            conn.close()
            raise
        self._thread_conn = conn

    def _connect_checked(self) -> sqlite3.Connection:
        """A read-only connection to a file found to be a durably database."""
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connect(self.busy_timeout_ms)
            check_schema(conn, self.path)
        except sqlite3.DatabaseError as e:
            if conn is not None:
                conn.close()
            if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
                raise StorageError("open", None, f"not a durably database: {self.path}") from e
            raise
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        return conn

    async def open(self) -> None:
        """Connect and migrate (in the thread: the migration may wait for a lock)."""
        if self._loop_conn is not None:
            return
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="durably-sqlite")
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._open_in_thread)
        except StorageError as e:
            self._shutdown()
            if self.path in str(e.cause):  # the read-only checks name the file themselves
                raise
            raise StorageError(e.operation, e.key, f"{self.path}: {e.cause}") from e
        except sqlite3.Error as e:
            self._shutdown()
            raise StorageError("open", None, f"SQLite database {self.path}: {explain(e)}") from e

    def _stat(self) -> tuple[int, int] | None:
        if self.path == ":memory:" or self.path.startswith("file:"):
            return None
        found = os.stat(self.path)
        return found.st_dev, found.st_ino

    def verify(self) -> None:
        """``StorageError`` when the database file was deleted or replaced since it was
        opened: the connections would go on writing to a file nobody will read again."""
        if self._identity is None:
            return
        try:
            now = self._stat()
        except FileNotFoundError:
            raise StorageError(
                "check", None, f"{self.path}: the database file was deleted while in use"
            ) from None
        except OSError as e:
            raise StorageError("check", None, f"{self.path}: {e}") from e
        if now != self._identity:
            raise StorageError(
                "check", None, f"{self.path}: the database file was replaced while in use"
            )

    def open_blocking(self) -> None:
        """``open`` for code that has no event loop at hand (test helpers): it may block."""
        if self._loop_conn is not None:
            return
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="durably-sqlite")
        try:
            self._open_in_thread()
        except BaseException:
            self._shutdown()
            raise

    def run_now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on the loop's connection, never waiting (test helpers' synchronous reads)."""
        if self._loop_conn is None:
            raise StorageError("read", None, f"{self.path}: the database is not open")
        return fn(self._loop_conn)

    def close_blocking(self) -> None:
        """Close both connections (test helpers)."""
        self._shutdown()

    def run_at_once(self, fn: Callable[[sqlite3.Connection], T], operation: str) -> T | None:
        """``fn``'s answer on the loop's connection, or ``None`` when the database is
        locked (``fn`` did nothing: then ``run`` it, to wait in the thread)."""
        conn = self._loop_conn
        if conn is None:
            raise StorageError(operation, None, f"{self.path}: the database is not open")
        try:
            return fn(conn)
        except sqlite3.Error as e:
            if not is_busy(e):
                raise StorageError(operation, None, explain(e), permanent=is_permanent(e)) from e
        return None

    async def run(self, fn: Callable[[sqlite3.Connection], T], operation: str = "read") -> T:
        """``fn``'s answer: at once on the loop's connection, or, when the database is
        locked, on the thread's connection, waiting for the lock there."""
        conn = self._loop_conn
        if conn is None or self._thread is None:
            raise StorageError(operation, None, f"{self.path}: the database is not open")
        try:
            return fn(conn)
        except sqlite3.Error as e:
            if not is_busy(e):
                raise StorageError(operation, None, explain(e), permanent=is_permanent(e)) from e
        self.waited += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, self._in_thread, fn
            )
        except sqlite3.Error as e:
            raise StorageError(operation, None, explain(e), permanent=is_permanent(e)) from e

    def _in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._thread_conn
        if conn is None:
            raise sqlite3.ProgrammingError("the database is closed")
        return fn(conn)

    def _shutdown(self) -> None:
        for conn in (self._loop_conn, self._thread_conn):
            if conn is not None:
                conn.close()
        self._loop_conn = self._thread_conn = None
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None

    async def close(self) -> None:
        """Close both connections (after the thread's work in flight)."""
        thread = self._thread
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, lambda: None)
        self._shutdown()
