"""Counting the statements an engine sends to its database, in its own process and on the
PostgreSQL server (the ``idle_worker`` scenario).

- **client side**, in the child process of one repetition, for every engine alike:
  SQLite: ``sqlite3.Connection.set_trace_callback`` on every connection opened after
  ``install`` (``sqlite3.connect`` is wrapped under both of its names: durably calls
  ``sqlite3.connect``, DBOS's SQLAlchemy ``sqlite3.dbapi2.connect``), one count per
  statement that SQLite executes (``BEGIN`` and ``COMMIT`` included, the ``-- TRIGGER``
  lines that SQLite adds for trigger programs not); PostgreSQL: psycopg's
  ``Cursor.execute``/``executemany`` (sync and async; both engines use psycopg 3), one
  count per statement sent (``executemany``: one per parameter set).
- **server side** (PostgreSQL only): ``xact_commit + xact_rollback`` of the bench
  database in ``pg_stat_database``, i.e. transactions, which is what the server counts
  for every database without an extension: ``pg_stat_statements`` would count
  statements, but it must be in ``shared_preload_libraries`` (a server restart), which
  a shared server cannot be given for a benchmark. A statement sent in autocommit (an
  idle poll) is one transaction; several statements in one transaction count once, so
  on a busy run the server count is at most the client count. The server publishes a
  backend's counts at most once a second (and an idle backend's within a second),
  so a reading lags the truth by about a second: over a window of many seconds the
  rate is right.

The harness's own completion checks run in a thread marked ``quiet`` (not counted on
the client side) over a connection of their own, and are subtracted from the server's
count (each is one autocommit ``SELECT``: one transaction).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

_local = threading.local()
_lock = threading.Lock()
_count = 0
_installed = False
ORIGINAL_SQLITE_CONNECT = sqlite3.connect


def statements() -> int:
    """Statements counted so far in this process (client side)."""
    return _count


def quiet() -> None:
    """Statements of the calling thread are not counted from now on."""
    _local.quiet = True


@contextlib.contextmanager
def quietly() -> Iterator[None]:
    """Statements of the calling thread are not counted inside the block."""
    before = getattr(_local, "quiet", False)
    _local.quiet = True
    try:
        yield
    finally:
        _local.quiet = before


def _add(n: int = 1) -> None:
    global _count
    if getattr(_local, "quiet", False):
        return
    with _lock:
        _count += n


def _trace(statement: str) -> None:
    if not statement.startswith("--"):
        _add()


def install() -> None:
    """Count every statement of the SQLite connections opened from now on and of every
    psycopg cursor (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = ORIGINAL_SQLITE_CONNECT(*args, **kwargs)
        conn.set_trace_callback(_trace)
        return conn

    # SQLAlchemy's pysqlite dialect calls ``sqlite3.dbapi2.connect``; durably calls
    # ``sqlite3.connect``: the same function under two names.
    sqlite3.connect = connect  # type: ignore[assignment]
    sqlite3.dbapi2.connect = connect  # type: ignore[assignment]
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the bench extra has it
        return
    for cls in (psycopg.Cursor, psycopg.AsyncCursor):
        _wrap_execute(cls)


def _wrap_execute(cls: Any) -> None:
    execute: Callable[..., Any] = cls.execute
    executemany: Callable[..., Any] = cls.executemany
    if getattr(cls, "_bench_counted", False):
        return
    if cls.__name__.startswith("Async"):

        async def aexecute(self: Any, *args: Any, **kwargs: Any) -> Any:
            _add()
            return await execute(self, *args, **kwargs)

        async def aexecutemany(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            params = list(params_seq)
            _add(len(params))
            return await executemany(self, query, params, **kwargs)

        cls.execute, cls.executemany = aexecute, aexecutemany
    else:

        def sexecute(self: Any, *args: Any, **kwargs: Any) -> Any:
            _add()
            return execute(self, *args, **kwargs)

        def sexecutemany(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            params = list(params_seq)
            _add(len(params))
            return executemany(self, query, params, **kwargs)

        cls.execute, cls.executemany = sexecute, sexecutemany
    cls._bench_counted = True


# -- the server's count ------------------------------------------------------------------------


def server_transactions(dsn: str) -> int:
    """``xact_commit + xact_rollback`` of the database of ``dsn``, read from the
    ``postgres`` database (so that reading it adds nothing to what it counts)."""
    import psycopg

    base, name = dsn.rsplit("/", 1)
    name = name.split("?", 1)[0]
    with quietly(), psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0
