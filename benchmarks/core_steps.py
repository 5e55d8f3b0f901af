"""Time per step of one long workflow on the in-memory runtime, at 1 000 and 10 000 steps.

Shows that a step's cost does not grow with the number of steps before it.
Run: ``.venv/bin/python benchmarks/core_steps.py``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import durably
from durably.containers import WorkflowLayer
from durably.testing import create_in_memory_runtime


@durably.workflow
async def long_workflow(n: int) -> int:
    total = 0
    for i in range(n):
        total += await durably.step("s", lambda i=i: i)
    return total


async def one_run(n: int) -> float:
    runtime, _ = create_in_memory_runtime(initial_time=0)
    layer = WorkflowLayer(runtime=runtime, workflows=[long_workflow])
    started = time.perf_counter()
    result = (await layer.orchestrator().start(durably.WorkflowCall("long_workflow", n))).unwrap()
    elapsed = time.perf_counter() - started
    if not result.completed or result.output != n * (n - 1) // 2:
        raise RuntimeError(f"the benchmark workflow ended wrong: {result}")
    return elapsed / n


def main() -> None:
    rows = []
    for n in (1_000, 10_000):
        samples = [asyncio.run(one_run(n)) for _ in range(3)]
        rows.append(
            {
                "scenario": "long_in_memory",
                "steps": n,
                "median_us_per_step": round(statistics.median(samples) * 1e6, 1),
                "min_us_per_step": round(min(samples) * 1e6, 1),
                "max_us_per_step": round(max(samples) * 1e6, 1),
                "repeats": len(samples),
            }
        )
    print(f"{'steps':>8} {'median µs/step':>15} {'min':>8} {'max':>8}")
    for row in rows:
        print(
            f"{row['steps']:>8} {row['median_us_per_step']:>15} "
            f"{row['min_us_per_step']:>8} {row['max_us_per_step']:>8}"
        )
    ratio = rows[1]["median_us_per_step"] / rows[0]["median_us_per_step"]
    print(f"per-step cost at 10 000 / at 1 000 steps: {ratio:.2f}")
    out = Path(__file__).parent / "results" / "core_steps.json"
    out.write_text(json.dumps({"python": sys.version, "rows": rows, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
