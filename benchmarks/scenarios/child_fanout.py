"""``child_fanout`` (issue 17): a parent fans out 1 000 children of one step each and sums
their outputs: seconds from submitting the parent until its output is in hand.

- durably: ``fan_out`` runs ``durably.gather(*(durably.child(one_step, i) ...))``; the
  process runs ``engine.run_worker(concurrency=1000)``, ``engine.queue(fan_out, n)``
  and ``engine.result(parent)`` (which waits on the engine's in-process signals). Each
  child is an instance of its own, queued by the parent, run by the worker; its end
  reaches the parent through the parent's inbox and makes it due.
- DBOS: ``fan_out`` calls ``DBOS.start_workflow(one_step, i)`` for each child (DBOS
  runs every child in a thread of its executor, unbounded by default) and then
  ``handle.get_result()`` for each; the process runs ``DBOS.start_workflow(fan_out,
  n).get_result()``. Both ``get_result`` wait on in-process futures, not on polling.

The output (the sum of the children's indexes) is checked.
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
PARENT = "fan-parent"


def run(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    if engine in DBOS_ENGINES:
        return _dbos(engine, target, sizes)
    return asyncio.run(_durably(engine, target, sizes))


def _check(output: Any, n: int) -> None:
    if output != sum(range(n)):
        raise RuntimeError(f"the parent returned {output!r}, not {sum(range(n))}")


async def _durably(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from durably.engine import Engine
    from scenarios.durably_app import WORKFLOWS, fan_out

    n = sizes.children
    async with Engine(WORKFLOWS, backend=durably_url(engine, target)) as eng:
        settings = durably_settings(eng, target)
        stop = asyncio.Event()
        worker = asyncio.create_task(eng.run_worker(concurrency=n, stop=stop))
        started = time.perf_counter()
        (await eng.queue(fan_out, n, id=PARENT)).unwrap()
        output = (await eng.result(PARENT)).unwrap()
        elapsed = time.perf_counter() - started
        stop.set()
        await worker
        children = len((await eng.status(PARENT)).unwrap().children)
    _check(output, n)
    if children != n:
        raise RuntimeError(f"the parent names {children} children, not {n}")
    return {
        "figures": {"s_total": elapsed, "children_per_s": n / elapsed},
        "settings": settings,
    }


def _dbos(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from dbos import DBOS, SetWorkflowID

    from scenarios import dbos_app

    n = sizes.children
    dbos_app.launch(dbos_config(engine, target))
    settings = dbos_settings(target)
    started = time.perf_counter()
    with SetWorkflowID(PARENT):
        handle = DBOS.start_workflow(dbos_app.fan_out, n)
    output = handle.get_result()
    elapsed = time.perf_counter() - started
    _check(output, n)
    children = DBOS.list_workflows(workflow_ids=None, name="one_step", load_input=False)
    done = [c for c in children if c.status == "SUCCESS"]
    if len(done) != n:
        raise RuntimeError(f"{len(done)} DBOS children succeeded, not {n}")
    return {
        "figures": {"s_total": elapsed, "children_per_s": n / elapsed},
        "settings": settings,
    }
