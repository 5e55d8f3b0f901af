"""Scale-out over PostgreSQL: throughput of 1, 2 and 4 worker processes.

1 000 workflows of 10 trivial steps are queued in a fresh schema, then N worker
processes (each ``engine.run_worker(concurrency=CONCURRENCY)``) run them; the time is
taken from the moment the workers are told to go until every instance is Completed.
Each configuration runs REPEATS times; the table shows the median (min, max)
workflows/s and the scaling factor against 1 worker.

Everything happens in a temporary database (``durably_bench_<hex>``) on the server of
``DURABLY_BENCH_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432``), dropped
at the end. Results go to ``benchmarks/results/postgres_workers.json``.

Run: ``.venv/bin/python benchmarks/postgres_workers.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

import durably
from durably.engine import Engine, Lease

WORKFLOWS = 1_000
STEPS = 10
WORKER_COUNTS = (1, 2, 4)
REPEATS = 3
CONCURRENCY = 100
LEASE = Lease(duration="30s", renew_every="5s")
SERVER = os.environ.get("DURABLY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
TIMEOUT_S = 300.0


def _constant(i: int) -> Callable[[], int]:
    return lambda: i


@durably.workflow
async def ten_steps(n: int) -> int:
    """``n`` trivial steps; returns the sum of their indices."""
    total = 0
    for i in range(n):
        total += await durably.step("s", _constant(i))
    return total


def _url(dsn: str, schema: str) -> str:
    return f"{dsn}?schema={schema}"


# -- the worker process -------------------------------------------------------------------


async def _worker(dsn: str, schema: str) -> None:
    """Say ``ready``, wait for ``go``, work until told ``stop`` on stdin."""
    async with Engine([ten_steps], backend=_url(dsn, schema), lease=LEASE) as engine:
        loop = asyncio.get_running_loop()
        print("ready", flush=True)
        if (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "go":
            return
        stop = asyncio.Event()

        async def wait_for_stop() -> None:
            await loop.run_in_executor(None, sys.stdin.readline)
            stop.set()

        watcher = loop.create_task(wait_for_stop())
        await engine.run_worker(concurrency=CONCURRENCY, stop=stop)
        await watcher


# -- the parent -----------------------------------------------------------------------------


def _admin() -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=5)


async def _queue_all(dsn: str, schema: str) -> None:
    async with Engine([ten_steps], backend=_url(dsn, schema), lease=LEASE) as engine:
        for start in range(0, WORKFLOWS, 100):
            results = await asyncio.gather(
                *(
                    engine.queue(ten_steps, STEPS, id=f"w-{i:04d}")
                    for i in range(start, min(start + 100, WORKFLOWS))
                )
            )
            for result in results:
                result.unwrap()


class _Child:
    def __init__(self, dsn: str, schema: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", dsn, schema],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def expect(self, word: str, timeout: float = 60.0) -> None:
        stdout: IO[str] | None = self.proc.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else ""
        if line.strip() != word:
            raise RuntimeError(f"worker {self.proc.pid} said {line!r} instead of {word!r}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        try:
            self.send("stop")
            self.proc.wait(timeout=60)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def _completed(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> int:
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}.instances WHERE status = 'Completed'").format(
            sql.Identifier(schema)
        )
    ).fetchone()
    return int(row[0]) if row else 0


def _check_outputs(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> None:
    rows = conn.execute(
        sql.SQL("SELECT value::text FROM {}.kv WHERE key = 'workflow:output'").format(
            sql.Identifier(schema)
        )
    ).fetchall()
    expected = sum(range(STEPS))
    wrong = [r[0] for r in rows if json.loads(r[0]) != expected]
    if len(rows) != WORKFLOWS or wrong:
        raise RuntimeError(f"{len(rows)} outputs, wrong ones: {wrong[:5]}")


def _one_run(dsn: str, workers: int, run: int) -> float:
    """Queue the workflows, run them with ``workers`` processes; returns workflows/s."""
    schema = f"bench_{workers}_{run}_{os.urandom(3).hex()}"
    asyncio.run(_queue_all(dsn, schema))
    children = [_Child(dsn, schema) for _ in range(workers)]
    try:
        for child in children:
            child.expect("ready")
        with psycopg.connect(dsn, autocommit=True) as conn:
            started = time.perf_counter()
            for child in children:
                child.send("go")
            while _completed(conn, schema) < WORKFLOWS:
                if time.perf_counter() - started > TIMEOUT_S:
                    raise RuntimeError(f"{workers} workers did not finish in {TIMEOUT_S}s")
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            _check_outputs(conn, schema)
    finally:
        for child in children:
            child.finish()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return WORKFLOWS / elapsed


def main() -> None:
    database = f"durably_bench_{os.urandom(6).hex()}"
    with _admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    dsn = f"{SERVER}/{database}"
    rows: list[dict[str, Any]] = []
    try:
        for workers in WORKER_COUNTS:
            samples = [_one_run(dsn, workers, run) for run in range(REPEATS)]
            rows.append(
                {
                    "workers": workers,
                    "workflows_per_s": statistics.median(samples),
                    "min": min(samples),
                    "max": max(samples),
                    "samples": samples,
                }
            )
            print(f"  {workers} worker(s): {[round(s, 1) for s in samples]} workflows/s")
    finally:
        with _admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
    base = rows[0]["workflows_per_s"]
    for row in rows:
        row["scaling_vs_1"] = row["workflows_per_s"] / base
    print(f"{'workers':>7} {'workflows/s':>12} {'min':>8} {'max':>8} {'scaling':>8}")
    for r in rows:
        print(
            f"{r['workers']:>7} {r['workflows_per_s']:>12.1f} {r['min']:>8.1f} "
            f"{r['max']:>8.1f} {r['scaling_vs_1']:>7.2f}x"
        )
    out = Path(__file__).parent / "results" / "postgres_workers.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                "python": sys.version,
                "sizes": {
                    "workflows": WORKFLOWS,
                    "steps": STEPS,
                    "concurrency_per_worker": CONCURRENCY,
                    "repeats": REPEATS,
                },
                "results": rows,
            },
            indent=2,
        )
    )
    print(f"written: {out}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        asyncio.run(_worker(sys.argv[2], sys.argv[3]))
    else:
        main()
