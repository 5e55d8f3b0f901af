"""Two source trees of durably side by side: the same scenarios, interleaved, medians.

    python benchmarks/ab.py OLD_TREE NEW_TREE [--repeats 5] [--backends sqlite,postgres]

Each repetition runs every scenario once per tree, alternating which tree goes first,
each in a fresh process (``PYTHONPATH=<tree>/src``), so both see the same minutes of
the machine. Only the public API is used, so any commit of durably can be compared.
Scenarios: ``sequential`` (workflows of 10 steps one after another: seconds per step)
and ``concurrent`` (1 000 queued workflows of 10 steps run by one worker: seconds in
all). Prints a table of medians and the new/old ratios; ``--out`` writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

STEPS = 10

CHILD = r"""
import asyncio, json, sys, time
import durably
from durably.engine import Engine

scenario, url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
STEPS = 10

def constant(i):
    return lambda: i

@durably.workflow
async def trivial(n: int) -> int:
    total = 0
    for i in range(n):
        total += await durably.step(f"s{i}", constant(i))
    return total

async def sequential():
    async with Engine([trivial], backend=url) as engine:
        started = time.perf_counter()
        for i in range(count):
            result = (await engine.start(trivial, STEPS, id=f"seq-{i}")).unwrap()
            assert result.completed and result.output == sum(range(STEPS)), result
        elapsed = time.perf_counter() - started
    return elapsed / (count * STEPS)

async def concurrent():
    async with Engine([trivial], backend=url) as engine:
        ids = [f"c-{i}" for i in range(count)]
        started = time.perf_counter()
        for r in await asyncio.gather(*(engine.queue(trivial, STEPS, id=i) for i in ids)):
            r.unwrap()
        stop = asyncio.Event()
        worker = asyncio.create_task(engine.run_worker(concurrency=count, stop=stop))
        for i in ids:
            assert (await engine.result(i)).unwrap() == sum(range(STEPS))
        elapsed = time.perf_counter() - started
        stop.set()
        await worker
    return elapsed

print(json.dumps(asyncio.run(sequential() if scenario == "sequential" else concurrent())))
"""

SIZES = {"sequential": 300, "concurrent": 1000}
PG_SERVER = os.environ.get("DURABLY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def _url(backend: str, folder: Path) -> tuple[str, Any]:
    if backend == "sqlite":
        path = folder / f"{uuid.uuid4().hex}.db"
        return f"sqlite:///{path}", path
    schema = f"ab_{uuid.uuid4().hex[:12]}"
    return f"{PG_SERVER}/test?schema={schema}", schema


def _cleanup(backend: str, handle: Any) -> None:
    if backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(str(handle) + suffix).unlink(missing_ok=True)
        return
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {handle} CASCADE")


def _run(tree: Path, scenario: str, backend: str, folder: Path) -> float:
    url, handle = _url(backend, folder)
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, scenario, url, str(SIZES[scenario])],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{tree} {scenario} {backend} failed:\n{out.stderr[-3000:]}")
        return float(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        _cleanup(backend, handle)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--scenarios", default="sequential,concurrent")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="durably-ab-") as tmp:
        for repeat in range(args.repeats):
            for backend in args.backends.split(","):
                for scenario in args.scenarios.split(","):
                    order = ["old", "new"] if repeat % 2 == 0 else ["new", "old"]
                    for name in order:
                        value = _run(trees[name], scenario, backend, Path(tmp))
                        runs.setdefault(f"{backend} {scenario} {name}", []).append(value)
                        print(f"  {repeat + 1}: {backend:8} {scenario:10} {name}: {value:.6f}")
    print(f"\n{'backend scenario':28} {'old':>12} {'new':>12} {'new/old':>8}")
    table: dict[str, Any] = {}
    for backend in args.backends.split(","):
        for scenario in args.scenarios.split(","):
            old = statistics.median(runs[f"{backend} {scenario} old"])
            new = statistics.median(runs[f"{backend} {scenario} new"])
            unit = "s/step" if scenario == "sequential" else "s"
            print(f"{backend + ' ' + scenario:28} {old:12.6f} {new:12.6f} {new / old:8.3f} {unit}")
            table[f"{backend} {scenario}"] = {
                "old_median": old,
                "new_median": new,
                "ratio": new / old,
                "old_runs": runs[f"{backend} {scenario} old"],
                "new_runs": runs[f"{backend} {scenario} new"],
                "unit": unit,
            }
    if args.out is not None:
        args.out.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
