"""``parallel_steps`` (issue 17): one workflow running 100 steps at once, each awaiting
100 ms: seconds from submitting the workflow until its output is in hand (0.1 s if the
steps really overlap, 10 s if they ran one after the other).

- durably: ``durably.gather(*(durably.step("nap", ...) for i in range(100)))``, the
  steps' commits grouped; ``engine.run(parallel_naps, [n, seconds])`` (start, run
  here, wait for the output).
- DBOS: the same in an async workflow: ``asyncio.gather`` of 100 async ``@DBOS.step``
  calls (DBOS supports concurrent steps in async workflows);
  ``await (await DBOS.start_workflow_async(parallel_naps, ...)).get_result()``.

The output (the sum of the steps' indexes) is checked.
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

METRIC = ("s_total", "s")


def run(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    if engine in DBOS_ENGINES:
        return asyncio.run(_dbos(engine, target, sizes))
    return asyncio.run(_durably(engine, target, sizes))


def _figures(elapsed: float, output: Any, sizes: Sizes) -> dict[str, float]:
    n = sizes.parallel_steps
    if output != sum(range(n)):
        raise RuntimeError(f"the workflow returned {output!r}, not {sum(range(n))}")
    return {
        "s_total": elapsed,
        # The time beyond one step's own wait: what running n steps at once costs.
        "s_overhead": elapsed - sizes.parallel_step_s,
    }


async def _durably(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from durably.engine import Engine
    from scenarios.durably_app import WORKFLOWS, parallel_naps

    args = [float(sizes.parallel_steps), sizes.parallel_step_s]
    async with Engine(WORKFLOWS, backend=durably_url(engine, target)) as eng:
        settings = durably_settings(eng, target)
        started = time.perf_counter()
        output = (await eng.run(parallel_naps, args, id="parallel")).unwrap()
        elapsed = time.perf_counter() - started
        steps = (await eng.status("parallel")).unwrap().completed_steps
    if len(steps) != sizes.parallel_steps:
        raise RuntimeError(f"{len(steps)} steps recorded, not {sizes.parallel_steps}")
    return {"figures": _figures(elapsed, output, sizes), "settings": settings}


async def _dbos(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from dbos import DBOS, SetWorkflowID

    from scenarios import dbos_app

    args = [float(sizes.parallel_steps), sizes.parallel_step_s]
    dbos_app.launch(dbos_config(engine, target))
    settings = dbos_settings(target)
    started = time.perf_counter()
    with SetWorkflowID("parallel"):
        handle = await DBOS.start_workflow_async(dbos_app.parallel_naps, args)
    output = await handle.get_result()
    elapsed = time.perf_counter() - started
    steps = await DBOS.list_workflow_steps_async("parallel")
    if len(steps) != sizes.parallel_steps:
        raise RuntimeError(f"{len(steps)} DBOS steps recorded, not {sizes.parallel_steps}")
    return {"figures": _figures(elapsed, output, sizes), "settings": settings}
