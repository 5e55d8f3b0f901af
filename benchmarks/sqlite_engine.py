"""The embedded default's speed on this machine, at both durability levels.

Scenarios (each repeated, median/min/max reported):
- sequential: workflows of 10 trivial steps, one after another: workflows/s, ms/step;
- long: one workflow of 1 000 steps: ms/step;
- concurrent: 1 000 workflows of 10 steps queued at once, run by the worker: total s.

Standalone (``make bench`` runs ``compare.py``, which covers these scenarios against
DBOS and the backend's floor): ``.venv/bin/python benchmarks/sqlite_engine.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import durably
from durably.engine import Engine

STEPS = 10
SEQUENTIAL = 200
LONG = 1_000
CONCURRENT = 1_000
REPEATS = 3


@durably.workflow
async def ten_steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += await durably.step("s", lambda i=i: i)
    return total


async def _sequential(engine: Engine) -> dict[str, float]:
    started = time.perf_counter()
    for i in range(SEQUENTIAL):
        (await engine.start(ten_steps, STEPS, id=f"seq-{i}")).unwrap()
    elapsed = time.perf_counter() - started
    return {
        "workflows_per_s": SEQUENTIAL / elapsed,
        "ms_per_step": elapsed / (SEQUENTIAL * STEPS) * 1e3,
    }


async def _long(engine: Engine) -> dict[str, float]:
    started = time.perf_counter()
    result = (await engine.start(ten_steps, LONG, id="long")).unwrap()
    elapsed = time.perf_counter() - started
    if not result.completed:
        raise RuntimeError("the long workflow did not complete")
    return {"ms_per_step": elapsed / LONG * 1e3}


async def _concurrent(engine: Engine) -> dict[str, float]:
    for i in range(CONCURRENT):
        (await engine.queue(ten_steps, STEPS, id=f"c-{i}")).unwrap()
    started = time.perf_counter()
    stop = asyncio.Event()
    worker = asyncio.create_task(engine.run_worker(concurrency=CONCURRENT, stop=stop))
    while True:
        done = (
            await engine.list(status="Completed", workflow="ten_steps", limit=CONCURRENT)
        ).unwrap()
        if len(done) >= CONCURRENT:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    stop.set()
    await worker
    return {"s_total": elapsed, "workflows_per_s": CONCURRENT / elapsed}


async def _once(
    scenario: Callable[[Engine], Awaitable[dict[str, float]]], synchronous: str
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db?synchronous={synchronous}"
        async with Engine([ten_steps], backend=url) as engine:
            return await scenario(engine)


def main() -> None:
    scenarios: dict[str, Callable[[Engine], Awaitable[dict[str, float]]]] = {
        "sequential": _sequential,
        "long": _long,
        "concurrent": _concurrent,
    }
    rows: list[dict[str, Any]] = []
    for name, scenario in scenarios.items():
        for synchronous in ("FULL", "NORMAL"):
            samples = [asyncio.run(_once(scenario, synchronous)) for _ in range(REPEATS)]
            for metric in samples[0]:
                values = [s[metric] for s in samples]
                rows.append(
                    {
                        "scenario": name,
                        "synchronous": synchronous,
                        "metric": metric,
                        "median": statistics.median(values),
                        "min": min(values),
                        "max": max(values),
                        "repeats": REPEATS,
                    }
                )
    print(f"{'scenario':<11} {'sync':<7} {'metric':<17} {'median':>10} {'min':>10} {'max':>10}")
    for r in rows:
        print(
            f"{r['scenario']:<11} {r['synchronous']:<7} {r['metric']:<17} "
            f"{r['median']:>10.3f} {r['min']:>10.3f} {r['max']:>10.3f}"
        )
    out = Path(__file__).parent / "results" / "sqlite_engine.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                "python": sys.version,
                "sizes": {
                    "steps": STEPS,
                    "sequential": SEQUENTIAL,
                    "long": LONG,
                    "concurrent": CONCURRENT,
                },
                "results": rows,
            },
            indent=2,
        )
    )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
