"""CPU instructions per step of durably on ``memory://``, counted by callgrind.

Wall-clock figures on a shared machine move by 10-20 % from run to run; instruction
counts do not (the same code, inputs and environment give the same count whatever
else the machine does). This runs ``--workflows`` workflows of ``--steps`` trivial
steps twice under ``valgrind --tool=callgrind``, with two numbers of workflows, and
prints the difference per step (or per workflow for ``--steps 0``), so the start-up
of Python and the engine cancels out.

Run: ``.venv/bin/python benchmarks/count_instructions.py [--steps 10] [--workflows 20 120]``
(needs ``valgrind``; about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _child(workflows: int, steps: int) -> None:
    sys.path.insert(0, str(HERE))
    from scenarios.durably_app import WORKFLOWS, trivial_steps

    from durably.engine import Engine

    async def main() -> None:
        async with Engine(WORKFLOWS, backend="memory://") as engine:
            for i in range(workflows):
                (await engine.start(trivial_steps, steps, id=f"w{i}")).unwrap()

    asyncio.run(main())


def _count(workflows: int, steps: int) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            str(workflows),
            str(steps),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workflows", type=int, nargs=2, default=(20, 120))
    args = parser.parse_args()
    few, many = args.workflows
    if many <= few:
        parser.error("--workflows takes two numbers, the second larger")
    extra = _count(many, args.steps) - _count(few, args.steps)
    if args.steps:
        print(
            f"{extra / ((many - few) * args.steps):,.0f} instructions per step "
            f"({args.steps}-step workflows)"
        )
    else:
        print(f"{extra / (many - few):,.0f} instructions per workflow (no steps)")


if __name__ == "__main__":
    main()
