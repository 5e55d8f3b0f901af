"""``concurrent``: 1 000 workflows of 10 trivial steps started at once: seconds until all done.

The clock starts before the first workflow is submitted and stops when the engine
itself reports every one of them as completed (one workflow at a time, every 50 ms).

- durably: ``engine.queue(...)`` for all of them (concurrently, so their creations are
  grouped), then ``engine.run_worker(concurrency=1000)``;
- DBOS: ``Queue.enqueue(...)`` for all of them on a queue without a concurrency limit,
  from ``DBOS_SUBMITTERS`` threads; DBOS runs each dequeued workflow in its own thread.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from scenarios.common import (
    DBOS_ENGINES,
    Sizes,
    Target,
    all_done,
    all_done_async,
    dbos_config,
    dbos_settings,
    durably_settings,
    durably_url,
)

METRIC = ("s_total", "s")
# Threads that submit DBOS's workflows (BENCH_DBOS_SUBMITTERS overrides it).
DBOS_SUBMITTERS = int(os.environ.get("BENCH_DBOS_SUBMITTERS", "1"))


def run(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    if engine in DBOS_ENGINES:
        return _dbos(engine, target, sizes)
    return asyncio.run(_durably(engine, target, sizes))


async def _durably(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from durably.engine import Engine
    from scenarios.durably_app import WORKFLOWS, is_completed, trivial_steps

    n = sizes.concurrent
    ids = [f"c-{i}" for i in range(n)]
    async with Engine(WORKFLOWS, backend=durably_url(engine, target)) as eng:
        settings = durably_settings(eng, target)
        started = time.perf_counter()
        queued = await asyncio.gather(*(eng.queue(trivial_steps, sizes.steps, id=i) for i in ids))
        for result in queued:
            result.unwrap()
        submitted = time.perf_counter() - started
        stop = asyncio.Event()
        worker = asyncio.create_task(eng.run_worker(concurrency=n, stop=stop))

        await all_done_async(ids, lambda i: is_completed(eng, i))
        elapsed = time.perf_counter() - started
        stop.set()
        await worker
        expected = sum(range(sizes.steps))
        for i in ids:
            output = (await eng.result(i)).unwrap()
            if output != expected:
                raise RuntimeError(f"workflow {i} returned {output}")
    return {
        "figures": {"s_total": elapsed, "s_to_submit": submitted, "workflows_per_s": n / elapsed},
        "settings": settings,
    }


def _dbos(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from dbos import DBOS, SetWorkflowID

    from scenarios import dbos_app

    queue = dbos_app.launch(dbos_config(engine, target), queue=True)
    settings = dbos_settings(target)
    n = sizes.concurrent
    ids = [f"c-{i}" for i in range(n)]

    def submit(i: str) -> None:
        with SetWorkflowID(i):
            queue.enqueue(dbos_app.trivial_steps, sizes.steps)

    started = time.perf_counter()
    if DBOS_SUBMITTERS == 1:
        for i in ids:
            submit(i)
    else:
        with ThreadPoolExecutor(DBOS_SUBMITTERS) as pool:
            list(pool.map(submit, ids))
    submitted = time.perf_counter() - started
    all_done(ids, dbos_app.is_completed)
    elapsed = time.perf_counter() - started
    expected = sum(range(sizes.steps))
    rows = DBOS.list_workflows(workflow_ids=ids, load_input=False)
    wrong = [r.workflow_id for r in rows if r.output != expected]
    if len(rows) != n or wrong:
        raise RuntimeError(f"{len(rows)} DBOS workflows, wrong outputs: {wrong[:5]}")
    return {
        "figures": {"s_total": elapsed, "s_to_submit": submitted, "workflows_per_s": n / elapsed},
        "settings": settings,
    }
