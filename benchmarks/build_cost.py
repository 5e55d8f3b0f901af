"""What it costs to build the services of one instance (the engine does it per alarm).

    python benchmarks/build_cost.py [--rounds 20000]

Builds the orchestrator of an instance (with its state machine, recovery, executor,
purge manager and event emitter) the way the engine does for each instance it serves,
over a ``memory://`` engine, and prints the median of several runs in microseconds. A
benchmark, not a test: compare two trees side by side in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import durably
from durably.engine import Engine


@durably.workflow
async def noop(_: None) -> None:
    return None


async def measure(rounds: int) -> list[float]:
    async with Engine([noop], backend="memory://") as engine:
        server = engine.server
        build = server.orchestrator
        runs = []
        for _ in range(7):
            started = time.perf_counter()
            for i in range(rounds):
                build(f"i{i % 100}", None)
            runs.append((time.perf_counter() - started) / rounds * 1e6)
        return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    runs = asyncio.run(measure(args.rounds))
    print(
        f"one instance's services: median {statistics.median(runs):.2f} us "
        f"(min {min(runs):.2f}, max {max(runs):.2f}, {len(runs)} runs of {args.rounds})"
    )


if __name__ == "__main__":
    main()
