"""``floor``: the bare commit rate of each backend at the engines' durability setting.

One tiny insert per transaction, one transaction after another, from Python (the
stdlib ``sqlite3``, or ``psycopg`` in autocommit): seconds per commit. Nothing an
engine does per durable step can be cheaper than this.

- SQLite: WAL with ``synchronous=FULL`` (durably's default), the row of ``latest.json``;
  for reference also the rollback journal with ``synchronous=FULL`` (DBOS's shipped
  setting) and WAL with ``synchronous=NORMAL`` (``durably_normal``);
- PostgreSQL: ``synchronous_commit=on`` (the server's setting, read back).
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from scenarios.common import Sizes, Target, postgres_settings

METRIC = ("s_per_commit", "s")
SQLITE_MODES = {
    "s_per_commit": ("WAL", "FULL"),
    "s_per_commit_delete_full": ("DELETE", "FULL"),
    "s_per_commit_wal_normal": ("WAL", "NORMAL"),
}


def run(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    if engine != "floor":
        raise ValueError(f"the floor scenario has no engine {engine!r}")
    if target.backend == "sqlite":
        return _sqlite(target, sizes)
    return _postgres(target, sizes)


def _sqlite(target: Target, sizes: Sizes) -> dict[str, Any]:
    assert target.folder is not None
    figures: dict[str, float] = {}
    settings: dict[str, Any] = {}
    for metric, (journal, sync) in SQLITE_MODES.items():
        path = os.path.join(target.folder, f"floor_{journal}_{sync}.db")
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"PRAGMA journal_mode = {journal}")
        conn.execute(f"PRAGMA synchronous = {sync}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        started = time.perf_counter()
        for _ in range(sizes.floor_commits):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (v) VALUES ('x')")
            conn.execute("COMMIT")
        figures[metric] = (time.perf_counter() - started) / sizes.floor_commits
        settings[metric] = {"journal_mode": journal, "synchronous": sync}
        conn.close()
    return {"figures": figures, "settings": settings}


def _postgres(target: Target, sizes: Sizes) -> dict[str, Any]:
    import psycopg

    assert target.dsn is not None
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE floor_t (id bigserial PRIMARY KEY, v text NOT NULL)")
        started = time.perf_counter()
        for _ in range(sizes.floor_commits):
            conn.execute("INSERT INTO floor_t (v) VALUES ('x')")
        elapsed = time.perf_counter() - started
    return {
        "figures": {"s_per_commit": elapsed / sizes.floor_commits},
        "settings": postgres_settings(target),
    }
