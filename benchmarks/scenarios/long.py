"""``long``: one workflow of 1 000 trivial steps: seconds per step.

Shows whether a step's cost grows with the number of steps before it (replay,
growing reads): it should not, so this figure should match ``sequential``'s.
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


async def _durably(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from durably.engine import Engine
    from scenarios.durably_app import WORKFLOWS, trivial_steps

    async with Engine(WORKFLOWS, backend=durably_url(engine, target)) as eng:
        settings = durably_settings(eng, target)
        started = time.perf_counter()
        result = (await eng.start(trivial_steps, sizes.long, id="long")).unwrap()
        elapsed = time.perf_counter() - started
    if not result.completed or result.output != sum(range(sizes.long)):
        raise RuntimeError(f"the long workflow ended wrong: {result}")
    return {
        "figures": {"s_per_step": elapsed / sizes.long, "s_total": elapsed},
        "settings": settings,
    }


def _dbos(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from dbos import SetWorkflowID

    from scenarios import dbos_app

    dbos_app.launch(dbos_config(engine, target))
    settings = dbos_settings(target)
    started = time.perf_counter()
    with SetWorkflowID("long"):
        output = dbos_app.trivial_steps(sizes.long)
    elapsed = time.perf_counter() - started
    if output != sum(range(sizes.long)):
        raise RuntimeError(f"the long workflow returned {output}")
    return {
        "figures": {"s_per_step": elapsed / sizes.long, "s_total": elapsed},
        "settings": settings,
    }
