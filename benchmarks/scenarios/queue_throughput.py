"""``queue_throughput`` (issue 18): 1 000 workflows of one step each through a queue that
runs at most 50 at once: seconds from the first submission until every one completed.

- durably: ``Queue("q", concurrency=50)``; ``engine.queue(trivial_steps, 1,
  queue="q")`` for all of them at once (``asyncio.gather``: their creations are
  grouped), then ``engine.run_worker()`` (its default concurrency, 100; the queue's
  cap of 50 is what binds);
- DBOS: ``DBOS.register_queue("q", concurrency=50, polling_interval_sec=...)``, then
  ``queue.enqueue(trivial_steps, 1)`` for each, from one thread (as ``concurrent``).
  DBOS's queue starts work only when it polls: its polling interval is
  ``QUEUE_POLL_S`` (50 ms; DBOS's default is 1 s, at which 1 000 workflows through 50
  slots would take at least 20 s), so that the figure shows more than the interval.

The clock stops when every workflow is seen completed by a thread of the harness that
counts them with one ``SELECT count(*)`` over a connection of its own every 50 ms
(``watch.py``): nothing of it runs in the engine under test. Checking through each
engine's API, one workflow at a time (as ``concurrent`` does), put up to 3 000 queries
of durably's status report (status, steps, children: three queries) through durably's
own pool and event loop on PostgreSQL, against one query per check for DBOS. Every
output is then checked through the engine's API. That the cap holds is proven by the
tests (``tests/integration/test_queue*.py``), not here.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from scenarios.common import (
    DBOS_ENGINES,
    POLL_S,
    Sizes,
    Target,
    dbos_config,
    dbos_settings,
    durably_settings,
    durably_url,
)
from scenarios.watch import Watcher

METRIC = ("s_total", "s")
QUEUE = "q"


def run(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    if engine in DBOS_ENGINES:
        return _dbos(engine, target, sizes)
    return asyncio.run(_durably(engine, target, sizes))


def _figures(elapsed: float, submitted: float, n: int) -> dict[str, float]:
    return {"s_total": elapsed, "s_to_submit": submitted, "workflows_per_s": n / elapsed}


async def _durably(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    import durably
    from durably.engine import Engine
    from scenarios.durably_app import WORKFLOWS, trivial_steps

    n = sizes.queued
    ids = [f"q-{i}" for i in range(n)]
    queue = durably.Queue(QUEUE, concurrency=sizes.queue_concurrency)
    async with Engine(WORKFLOWS, backend=durably_url(engine, target), queues=[queue]) as eng:
        settings = durably_settings(eng, target)
        started = time.perf_counter()
        queued = await asyncio.gather(
            *(eng.queue(trivial_steps, 1, id=i, queue=QUEUE) for i in ids)
        )
        for result in queued:
            result.unwrap()
        submitted = time.perf_counter() - started
        stop = asyncio.Event()
        worker = asyncio.create_task(eng.run_worker(stop=stop))
        table = "bench.instances" if target.dsn else "instances"
        watcher = Watcher(
            target,
            f"SELECT count(*) FROM {table} WHERE status = 'Completed'",
            os.path.join(target.folder or "", "durably.db"),
            n,
            POLL_S,
        )
        watcher.start()
        await asyncio.to_thread(watcher.wait)
        assert watcher.finished_at is not None
        elapsed = watcher.finished_at - started
        stop.set()
        await worker
        for i in ids:
            output = (await eng.result(i)).unwrap()
            if output != 0:
                raise RuntimeError(f"workflow {i} returned {output}")
    return {
        "figures": _figures(elapsed, submitted, n),
        "settings": {**settings, "queue_concurrency": sizes.queue_concurrency},
    }


def _dbos(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from dbos import DBOS, SetWorkflowID

    from scenarios import dbos_app

    n = sizes.queued
    ids = [f"q-{i}" for i in range(n)]
    dbos_app.launch(dbos_config(engine, target))
    queue = DBOS.register_queue(
        QUEUE, concurrency=sizes.queue_concurrency, polling_interval_sec=dbos_app.QUEUE_POLL_S
    )
    settings = dbos_settings(target)
    started = time.perf_counter()
    for i in ids:
        with SetWorkflowID(i):
            queue.enqueue(dbos_app.trivial_steps, 1)
    submitted = time.perf_counter() - started
    table = "dbos.workflow_status" if target.dsn else "workflow_status"
    watcher = Watcher(
        target,
        f"SELECT count(*) FROM {table} WHERE status = 'SUCCESS' AND name = 'trivial_steps'",
        os.path.join(target.folder or "", "dbos.sqlite"),
        n,
        POLL_S,
    )
    watcher.start()
    watcher.wait()
    assert watcher.finished_at is not None
    elapsed = watcher.finished_at - started
    rows = DBOS.list_workflows(workflow_ids=ids, load_input=False)
    wrong = [r.workflow_id for r in rows if r.output != 0]
    if len(rows) != n or wrong:
        raise RuntimeError(f"{len(rows)} DBOS workflows, wrong outputs: {wrong[:5]}")
    return {
        "figures": _figures(elapsed, submitted, n),
        "settings": {
            **settings,
            "queue_concurrency": sizes.queue_concurrency,
            "queue_poll_s": dbos_app.QUEUE_POLL_S,
        },
    }
