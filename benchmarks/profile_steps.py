"""Where durably's time per step goes: the ``sequential`` scenario, profiled.

Runs ``--workflows`` workflows of 10 trivial steps one after another (as ``sequential``
does) on SQLite (WAL + ``--synchronous``) or PostgreSQL, and reports per step:

- wall time and CPU time of this process, user and system apart (user = the Python
  work and SQLite's own; system = the kernel's, the fsync among it; the rest is waiting
  for the disk or the server);
- every SQL statement, by kind (time spent inside the driver call, and calls per step),
  so the fsync of ``COMMIT`` and the round trips show apart from the Python around them;
- with ``--cprofile``, the functions with the most own time, grouped by package, and
  the top functions (cProfile inflates Python-heavy code, so use it for shares);
- with ``--replay`` (SQLite), the bound that durably's statements set by themselves:
  every statement of the run, with its parameters, is recorded and then executed again,
  in order and without the engine, on a new database file at the same settings,
  alternating with the floor (one tiny insert per transaction) measured alike.

Run: ``.venv/bin/python benchmarks/profile_steps.py [--backend postgres] [--cprofile]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import os
import pstats
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scenarios.durably_app import WORKFLOWS, trivial_steps  # noqa: E402

from durably.engine import Engine  # noqa: E402

STEPS = 10
SERVER = os.environ.get("DURABLY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")

_SQL_TIME: dict[str, float] = defaultdict(float)
_SQL_CALLS: dict[str, int] = defaultdict(int)
_RECORDED: list[tuple[str, Any, bool]] = []
"""(sql, parameters, executemany) of every statement, when ``--replay`` records them."""
_RECORDING = [False]


def _kind(sql: Any) -> str:
    return _kind_of(sql if isinstance(sql, str) else str(sql))


@functools.lru_cache(maxsize=1024)
def _kind_of(text: str) -> str:
    words = re.sub(r"\s+", " ", text.strip()).split(" ")
    head = words[0].upper()
    if head in ("INSERT", "DELETE"):
        into = words[2] if len(words) > 2 else "?"
        return f"{head} {into.split('.')[-1].split('(')[0]}"
    if head == "UPDATE":
        return f"UPDATE {words[1].split('.')[-1]}" if len(words) > 1 else head
    if head == "SELECT":
        match = re.search(r"\bFROM (\S+)", text)
        return f"SELECT {match.group(1).split('.')[-1]}" if match else "SELECT"
    return " ".join(words[:2]).upper() if head in ("ROLLBACK", "RELEASE") else head


def _record(kind: str, started: float) -> None:
    _SQL_TIME[kind] += time.perf_counter() - started
    _SQL_CALLS[kind] += 1


class _TimedSqlite:
    """A ``sqlite3.Connection`` stand-in that times every statement by kind."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Any = ()) -> Any:
        if _RECORDING[0]:
            _RECORDED.append((sql, params, False))
        started = time.perf_counter()
        try:
            return self._conn.execute(sql, params)
        finally:
            _record(_kind(sql), started)

    def executemany(self, sql: str, rows: Any) -> Any:
        if _RECORDING[0]:
            rows = list(rows)
            _RECORDED.append((sql, rows, True))
        started = time.perf_counter()
        try:
            return self._conn.executemany(sql, rows)
        finally:
            _record(_kind(sql) + " (many)", started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _time_psycopg() -> None:
    """Time psycopg's statements by kind (wall time of the call, awaited or blocking)."""
    import psycopg

    def wrap(method: Callable[..., Any], suffix: str) -> Callable[..., Any]:
        async def timed(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(self, query, *args, **kwargs)
            finally:
                _record(_kind(query) + suffix, started)

        return timed

    cursor: Any = psycopg.AsyncCursor
    cursor.execute = wrap(cursor.execute, "")
    cursor.executemany = wrap(cursor.executemany, " (many)")

    def wrap_blocking(method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(self, query, *args, **kwargs)
            finally:
                _record(_kind(query) + " (blocking)", started)

        return timed

    blocking: Any = psycopg.Cursor  # the commits made without leaving the event loop
    blocking.execute = wrap_blocking(blocking.execute)


@contextmanager
def _target(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        folder = tempfile.mkdtemp(prefix="durably-profile-")
        try:
            yield f"sqlite:///{folder}/profile.db"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    import psycopg

    name = f"durably_profile_{os.getpid()}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}?schema=bench"
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _run(url: str, workflows: int, profiler: cProfile.Profile | None) -> dict[str, float]:
    async with Engine(WORKFLOWS, backend=url) as engine:
        if url.startswith("sqlite"):
            db = engine.host.db  # the loop's connection: every commit that need not wait
            db._loop_conn = _TimedSqlite(db._loop_conn)
        for i in range(5):  # warm up: imports, caches, the first pages of the file
            (await engine.start(trivial_steps, STEPS, id=f"warm-{i}")).unwrap()
        _SQL_TIME.clear()
        _SQL_CALLS.clear()
        _RECORDING[0] = url.startswith("sqlite")
        wall, cpu = time.perf_counter(), os.times()
        if profiler is not None:
            profiler.enable()
        for i in range(workflows):
            (await engine.start(trivial_steps, STEPS, id=f"p-{i}")).unwrap()
        if profiler is not None:
            profiler.disable()
        _RECORDING[0] = False
        end = os.times()
        return {
            "wall": time.perf_counter() - wall,
            "user": end.user - cpu.user,
            "system": end.system - cpu.system,
        }


def _fresh_database(folder: str, name: str, synchronous: str) -> sqlite3.Connection:
    """A new database file at the engine's settings (WAL, ``synchronous``, its schema)."""
    from durably.adapters.sqlite.schema import migrate

    conn = sqlite3.connect(str(Path(folder) / name), isolation_level=None)
    migrate(conn)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("CREATE TABLE floor (id INTEGER PRIMARY KEY, v INTEGER)")
    return conn


def _replay(synchronous: str, steps: int, rounds: int = 3) -> None:
    """Run the recorded statements again without the engine, alternating with the floor."""
    commits = sum(1 for sql, _, _ in _RECORDED if sql.strip().upper() == "COMMIT")
    replays: list[float] = []
    floors: list[float] = []
    folder = tempfile.mkdtemp(prefix="durably-replay-")
    try:
        for i in range(rounds):
            conn = _fresh_database(folder, f"replay-{i}.db", synchronous)
            started = time.perf_counter()
            for sql, params, many in _RECORDED:
                if many:
                    conn.executemany(sql, params)
                else:
                    conn.execute(sql, params).fetchall()
            replays.append(time.perf_counter() - started)
            conn.close()
            conn = _fresh_database(folder, f"floor-{i}.db", synchronous)
            started = time.perf_counter()
            for _ in range(commits):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO floor (v) VALUES (?)", (1,))
                conn.execute("COMMIT")
            floors.append((time.perf_counter() - started) / commits)
            conn.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    replay, floor = statistics.median(replays) / steps, statistics.median(floors)
    print(
        f"  replay of durably's {len(_RECORDED)} statements ({commits} commits) without the"
        f" engine, median of {rounds}:"
    )
    print(
        f"    {replay * 1e3:.3f} ms/step; floor {floor * 1e3:.3f} ms/commit;"
        f" replay / floor = {replay / floor:.2f} per step ({commits / steps:.2f} commits/step)"
    )


def _package(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/durably/" in filename:
        parts = filename.split("/durably/", 1)[1].split("/")
        return "durably." + (parts[0] if len(parts) > 1 else parts[0].removesuffix(".py"))
    if filename.startswith("~") or filename == "<built-in>":
        return "builtins (C: sqlite3, json, ...)"
    if "/lib/python3" in filename:
        return "stdlib." + filename.rsplit("/", 1)[-1].removesuffix(".py")
    return filename.rsplit("/", 1)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--replay", action="store_true", help="SQLite: replay the statements")
    args = parser.parse_args()
    if args.backend == "postgres":
        _time_psycopg()
    profiler = cProfile.Profile() if args.cprofile else None
    with _target(args.backend) as url:
        if args.backend == "sqlite":
            url += f"?synchronous={args.synchronous}"
        figures = asyncio.run(_run(url, args.workflows, profiler))
    steps = args.workflows * STEPS
    per = 1e3 / steps
    setting = f" synchronous={args.synchronous}" if args.backend == "sqlite" else ""
    print(f"{args.backend}{setting}: {args.workflows} workflows x {STEPS} steps")
    print(
        f"  wall {figures['wall'] * per:.3f} ms/step, CPU user {figures['user'] * per:.3f}"
        f" + system {figures['system'] * per:.3f} ms/step"
    )
    sql_total = sum(_SQL_TIME.values())
    print(
        f"  SQL: {sql_total * per:.3f} ms/step in "
        f"{sum(_SQL_CALLS.values()) / steps:.1f} statements/step; by kind:"
    )
    for kind, spent in sorted(_SQL_TIME.items(), key=lambda kv: -kv[1]):
        print(
            f"    {kind:<32} {spent * per:7.3f} ms/step  {_SQL_CALLS[kind] / steps:5.2f} calls/step"
            f"  {spent / _SQL_CALLS[kind] * 1e3:7.3f} ms/call"
        )
    print(f"  outside the SQL calls: {(figures['wall'] - sql_total) * per:.3f} ms/step")
    if args.replay and args.backend == "sqlite":
        _replay(args.synchronous, steps)
    if profiler is None:
        return
    stats = pstats.Stats(profiler)
    raw: Any = stats.stats  # type: ignore[attr-defined]
    by_package: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        by_package[_package(filename)] += tottime
        total += tottime
    print(f"  cProfile own time by package (of {total * per:.3f} ms/step under the profiler):")
    for package, spent in sorted(by_package.items(), key=lambda kv: -kv[1])[:15]:
        print(f"    {package:<40} {spent * per:7.3f} ms/step  {spent / total:6.1%}")
    print("  top functions by own time:")
    stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
