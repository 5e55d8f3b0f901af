"""What every scenario shares: sizes, targets (a fresh database), engine settings, waiting.

An *engine* is one of the rows of ``latest.json``:

- ``durably``: SQLite in WAL with ``synchronous=FULL``, or PostgreSQL;
- ``durably_normal``: durably on SQLite in WAL with ``synchronous=NORMAL`` (SQLite only);
- ``dbos``: DBOS Transact as shipped (on SQLite: its own engine, rollback journal,
  SQLite's default ``synchronous=FULL``);
- ``dbos_wal``: DBOS with its SQLite database in WAL (``synchronous=FULL`` kept),
  through DBOS's ``system_database_engine`` setting (SQLite only);
- ``dbos_poll``: DBOS as shipped but for its notification listener, which polls every
  ``EVENT_POLL_S`` (durably's poll interval in the event scenarios) instead of DBOS's
  default 1 s (the event scenarios only);
- ``floor``: no engine, the bare commit of the backend (``scenarios/floor.py``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

DURABLY_ENGINES = ("durably", "durably_normal")
DBOS_ENGINES = ("dbos", "dbos_wal", "dbos_poll")
SQLITE_ONLY = ("durably_normal", "dbos_wal")

# The poll interval of durably's worker in the event scenarios, and of DBOS's notification
# listener in ``dbos_poll`` (BENCH_EVENT_POLL_S overrides it). Both engines poll only on
# SQLite: on PostgreSQL both are woken by LISTEN/NOTIFY. durably's default is 1 s, the
# same as DBOS's; 100 ms is short enough that the figures show more than the interval.
EVENT_POLL_S = float(os.environ.get("BENCH_EVENT_POLL_S", "0.1"))

# How often "until all are done" is checked, for every engine alike.
POLL_S = 0.05
# A scenario that has not finished by then has failed.
DEADLINE_S = 1_200.0


@dataclass(frozen=True)
class Sizes:
    """The sizes of the issue (the default) or of ``--quick``."""

    steps: int = 10
    sequential: int = 500
    long: int = 1_000
    concurrent: int = 1_000
    recovery: int = 100
    floor_commits: int = 2_000
    kill_after_fraction: float = 0.3
    event_sends: int = 200
    event_waiters: int = 1_000
    children: int = 1_000
    parallel_steps: int = 100
    parallel_step_s: float = 0.1
    queued: int = 1_000
    queue_concurrency: int = 50
    idle_s: float = 30.0
    idle_steps: int = 200
    # PostgreSQL's statistics lag (idle_worker): the warm-up before the idle window and
    # the wait before the server's count of the run is read; shorter and less exact
    # with --quick.
    idle_settle_s: float = 12.0

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            sequential=50,
            long=200,
            concurrent=100,
            recovery=30,
            floor_commits=300,
            event_sends=20,
            event_waiters=100,
            children=100,
            queued=100,
            idle_s=5.0,
            idle_steps=50,
            idle_settle_s=2.0,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sizes:
        return cls(**data)


@dataclass(frozen=True)
class Target:
    """Where one repetition keeps its state: a fresh SQLite folder or PostgreSQL database."""

    backend: str  # "sqlite" or "postgres"
    folder: str | None = None  # sqlite: an empty folder of this repetition
    dsn: str | None = None  # postgres: postgresql://user@host:port/<fresh database>

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Target:
        return cls(**data)

    @property
    def side_log(self) -> str:
        """The recovery scenario's log of step executions (beside the database)."""
        base = self.folder if self.folder is not None else os.environ.get("TMPDIR", "/tmp")
        return os.path.join(base, "steps.log")


# -- durably --------------------------------------------------------------------------------


def durably_url(engine: str, target: Target) -> str:
    """The backend URL of durably for ``engine`` on ``target``."""
    if target.backend == "sqlite":
        assert target.folder is not None
        sync = "NORMAL" if engine == "durably_normal" else "FULL"
        return f"sqlite:///{target.folder}/durably.db?synchronous={sync}"
    assert target.dsn is not None
    assert engine == "durably"
    return f"{target.dsn}?schema=bench"


def durably_settings(engine_obj: Any, target: Target) -> dict[str, Any]:
    """The durability settings actually in force (read back from the database)."""
    if target.backend == "sqlite":
        db = engine_obj.host.db

        def pragma(name: str) -> Any:
            return db.run_now(lambda conn: conn.execute(f"PRAGMA {name}").fetchone()[0])

        return {
            "journal_mode": pragma("journal_mode"),
            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[pragma("synchronous")],
        }
    return postgres_settings(target)


# -- DBOS -----------------------------------------------------------------------------------


def dbos_config(engine: str, target: Target) -> dict[str, Any]:
    """The ``DBOS(config=...)`` of ``engine`` on ``target``."""
    config: dict[str, Any] = {"name": "bench", "log_level": "WARNING"}
    if engine == "dbos_poll":
        config["notification_listener_polling_interval_sec"] = EVENT_POLL_S
    if target.backend == "postgres":
        assert target.dsn is not None
        assert engine in ("dbos", "dbos_poll")
        config["system_database_url"] = target.dsn
        return config
    assert target.folder is not None
    url = f"sqlite:///{target.folder}/dbos.sqlite"
    config["system_database_url"] = url
    if engine == "dbos_wal":
        config["system_database_engine"] = _dbos_wal_engine(url)
    return config


def _dbos_wal_engine(url: str) -> Any:
    """DBOS's own SQLite engine (``SQLiteSystemDatabase._create_engine`` and the pool
    settings of ``configure_db_engine_parameters``), plus WAL; ``synchronous`` stays FULL."""
    import sqlalchemy as sa
    from sqlalchemy import event

    engine = sa.create_engine(
        url, pool_size=20, max_overflow=0, pool_timeout=30, pool_pre_ping=True
    )

    @event.listens_for(engine, "connect")
    def _setup(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=FULL")
        dbapi_conn.isolation_level = "IMMEDIATE"
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    return engine


def dbos_settings(target: Target) -> dict[str, Any]:
    """The durability settings in force on DBOS's system database (read back)."""
    if target.backend == "postgres":
        return postgres_settings(target)
    import sqlalchemy as sa
    from dbos._dbos import _get_dbos_instance

    engine = _get_dbos_instance()._sys_db.engine  # the engine DBOS really uses
    with engine.connect() as conn:
        journal = conn.execute(sa.text("PRAGMA journal_mode")).scalar()
        sync = conn.execute(sa.text("PRAGMA synchronous")).scalar()
    return {
        "journal_mode": journal,
        "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[int(sync)],
    }


# -- PostgreSQL -----------------------------------------------------------------------------


def postgres_settings(target: Target) -> dict[str, Any]:
    import psycopg

    assert target.dsn is not None
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        out: dict[str, Any] = {}
        for name in ("synchronous_commit", "fsync", "wal_sync_method", "server_version"):
            row = conn.execute(f"SHOW {name}").fetchone()
            out[name] = row[0] if row else None
        return out


# -- waiting --------------------------------------------------------------------------------


async def all_done_async(ids: Sequence[str], is_done: Callable[[str], Awaitable[bool]]) -> None:
    """Wait until ``is_done`` holds for every id, checking one id at a time every ``POLL_S``.

    One cheap point read per check, the same for every engine (a listing of all the
    instances at every check would load the engine being measured far more).
    """
    deadline = time.monotonic() + DEADLINE_S
    for instance_id in ids:
        while not await is_done(instance_id):
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {instance_id}")
            await asyncio.sleep(POLL_S)


def all_done(ids: Sequence[str], is_done: Callable[[str], bool]) -> None:
    """``all_done_async`` for an engine with a blocking API."""
    deadline = time.monotonic() + DEADLINE_S
    for instance_id in ids:
        while not is_done(instance_id):
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {instance_id}")
            time.sleep(POLL_S)


def append_line(path: str, line: str) -> None:
    """Append one line to the side log in one ``write`` (``O_APPEND``: whole lines).

    No fsync: the recovery scenario kills the process, not the machine, and a
    ``write`` that returned is in the kernel's page cache, so it survives SIGKILL.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def clock_ns() -> int:
    """Now, on a clock that every process of the machine shares (``CLOCK_MONOTONIC`` is
    system-wide on Linux): the event scenarios subtract a time taken in one process from
    one taken in another."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def mark_stepped(key: str) -> int:
    """The body of the step after the wait in the event scenarios: note ``stepped <key>
    <clock_ns>`` in the side log; that time."""
    now = clock_ns()
    append_line(os.environ["BENCH_SIDE_LOG"], f"stepped {key} {now}")
    return now
