"""``sequential``: workflows of 10 trivial steps, one after another.

Figures: seconds per step (the primary metric) and workflows per second. A workflow
of N steps costs durably N + 2 commits; each call returns once the workflow completed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from scenarios.common import (
    DBOS_ENGINES,
    Sizes,
    Target,
    dbos_config,
    dbos_settings,
    durably_settings,
    durably_url,
)

METRIC = ("s_per_step", "s")


def run(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    if engine in DBOS_ENGINES:
        return _dbos(engine, target, sizes)
    return asyncio.run(_durably(engine, target, sizes))


def _figures(elapsed: float, sizes: Sizes) -> dict[str, Any]:
    return {
        "s_per_step": elapsed / (sizes.sequential * sizes.steps),
        "workflows_per_s": sizes.sequential / elapsed,
        "s_total": elapsed,
    }


async def _durably(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from durably.engine import Engine
    from scenarios.durably_app import WORKFLOWS, trivial_steps

    expected = sum(range(sizes.steps))
    async with Engine(WORKFLOWS, backend=durably_url(engine, target)) as eng:
        settings = durably_settings(eng, target)
        started = time.perf_counter()
        for i in range(sizes.sequential):
            result = (await eng.start(trivial_steps, sizes.steps, id=f"seq-{i}")).unwrap()
            if not result.completed or result.output != expected:
                raise RuntimeError(f"workflow seq-{i} ended wrong: {result}")
        elapsed = time.perf_counter() - started
    return {"figures": _figures(elapsed, sizes), "settings": settings}


def _dbos(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from dbos import SetWorkflowID

    from scenarios import dbos_app

    dbos_app.launch(dbos_config(engine, target))
    settings = dbos_settings(target)
    expected = sum(range(sizes.steps))
    started = time.perf_counter()
    for i in range(sizes.sequential):
        with SetWorkflowID(f"seq-{i}"):
            output = dbos_app.trivial_steps(sizes.steps)
        if output != expected:
            raise RuntimeError(f"workflow seq-{i} returned {output}")
    elapsed = time.perf_counter() - started
    return {"figures": _figures(elapsed, sizes), "settings": settings}
