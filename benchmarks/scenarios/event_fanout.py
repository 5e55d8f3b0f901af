"""``event_fanout``: 1 000 workflows each waiting for one event, all the events sent at
once: seconds until every workflow completed.

One process per repetition, which runs the workflows and sends the events, each engine
in its usual shape (an application that sends events to its own workflows):

- durably: ``engine.queue(...)`` for every workflow, ``engine.run_worker(concurrency=
  1000)`` (``poll_interval=EVENT_POLL_S``), until every instance is paused on its event;
  then the clock starts and all the ``engine.send_event(...)`` calls are made at once
  (``asyncio.gather``, so that their commits are grouped). This process's worker is
  woken by the sends themselves, so its poll interval plays no part;
- DBOS: ``DBOS.start_workflow(...)`` for every workflow (each in a thread of its own),
  until each waits in ``DBOS.recv`` (its timeout recorded); then the clock starts and
  one ``DBOS.send_bulk(...)`` sends every message in one transaction (DBOS's fastest
  way to send many). DBOS wakes its waiters from its notification listener: on SQLite
  it polls every 1 s (``dbos``) or ``EVENT_POLL_S`` (``dbos_poll``), one query per
  waiter; on PostgreSQL a trigger's NOTIFY wakes it.

The clock stops when the engine reports every workflow as completed (one workflow at a
time, every 50 ms, like ``concurrent``). The workflow is ``awaits_event`` (wait, then one
step); its output carries the payload, which is checked, and the step's ``clock_ns``,
which gives ``s_to_last_step`` and ``s_to_step_median``: from the clock's start to the
steps after the wait.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from scenarios.common import (
    DBOS_ENGINES,
    EVENT_POLL_S,
    Sizes,
    Target,
    all_done,
    all_done_async,
    clock_ns,
    dbos_config,
    dbos_settings,
    durably_settings,
    durably_url,
)

METRIC = ("s_total", "s")


def keys(sizes: Sizes) -> list[str]:
    return [f"fan-{i:04d}" for i in range(sizes.event_waiters)]


def run(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    if engine in DBOS_ENGINES:
        return _dbos(engine, target, sizes)
    return asyncio.run(_durably(engine, target, sizes))


def _figures(
    elapsed: float, submitted: float, began_ns: int, ids: list[str], outputs: list[Any]
) -> dict[str, float]:
    """The figures of a run, after checking every output (``[payload, stepped_ns]``)."""
    wrong = [i for n, (i, out) in enumerate(zip(ids, outputs, strict=True)) if out[0] != n]
    if wrong:
        raise RuntimeError(f"{len(wrong)} workflows returned another payload: {wrong[:5]}")
    to_step = sorted((out[1] - began_ns) / 1e9 for out in outputs)
    return {
        "s_total": elapsed,
        "s_to_send": submitted,
        "s_to_step_median": statistics.median(to_step),
        "s_to_last_step": to_step[-1],
        "workflows_per_s": len(ids) / elapsed,
    }


async def _durably(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from durably.engine import Engine
    from scenarios.durably_app import EVENT, WORKFLOWS, awaits_event, is_completed, is_waiting

    ids = keys(sizes)
    url = durably_url(engine, target)
    async with Engine(WORKFLOWS, backend=url, poll_interval=f"{EVENT_POLL_S}s") as eng:
        settings = durably_settings(eng, target)
        queued = await asyncio.gather(*(eng.queue(awaits_event, k, id=k) for k in ids))
        for result in queued:
            result.unwrap()
        stop = asyncio.Event()
        worker = asyncio.create_task(eng.run_worker(concurrency=len(ids), stop=stop))
        await all_done_async(ids, lambda k: is_waiting(eng, k))

        began_ns = clock_ns()
        started = time.perf_counter()
        sent = await asyncio.gather(*(eng.send_event(k, EVENT, n) for n, k in enumerate(ids)))
        submitted = time.perf_counter() - started
        lost = [k for k, s in zip(ids, sent, strict=True) if not s.unwrap().delivered]
        if lost:
            raise RuntimeError(f"{len(lost)} events not delivered: {lost[:5]}")
        await all_done_async(ids, lambda k: is_completed(eng, k))
        elapsed = time.perf_counter() - started

        stop.set()
        await worker
        outputs = [(await eng.result(k)).unwrap() for k in ids]
    figures = _figures(elapsed, submitted, began_ns, ids, outputs)
    return {"figures": figures, "settings": {**settings, "poll_interval_s": EVENT_POLL_S}}


def _dbos(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from dbos import DBOS, SendMessage, SetWorkflowID

    from scenarios import dbos_app

    ids = keys(sizes)
    dbos_app.launch(dbos_config(engine, target))
    settings = dbos_settings(target)
    for k in ids:
        with SetWorkflowID(k):
            DBOS.start_workflow(dbos_app.awaits_event, k)
    all_done(ids, dbos_app.is_waiting)

    began_ns = clock_ns()
    started = time.perf_counter()
    DBOS.send_bulk([SendMessage(k, n, dbos_app.TOPIC) for n, k in enumerate(ids)])
    submitted = time.perf_counter() - started
    all_done(ids, dbos_app.is_completed)
    elapsed = time.perf_counter() - started

    rows = DBOS.list_workflows(workflow_ids=ids, load_input=False)
    by_id = {r.workflow_id: r.output for r in rows}
    if len(by_id) != len(ids):
        raise RuntimeError(f"{len(by_id)} DBOS workflows listed of {len(ids)}")
    figures = _figures(elapsed, submitted, began_ns, ids, [by_id[k] for k in ids])
    poll = 1.0 if engine == "dbos" else EVENT_POLL_S
    return {"figures": figures, "settings": {**settings, "notification_poll_s": poll}}
