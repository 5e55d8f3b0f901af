"""``recovery``: 100 workflows in flight, the process killed with SIGKILL, a new one started.

Three child processes per repetition, driven by ``drive`` in the parent:

1. ``crash``: starts the workflows (durably: queued, then ``run_worker``; DBOS: enqueued
   on a queue) whose steps each append ``<workflow> <step> <pid>`` to a side log before
   returning; once the side log holds ``kill_after_fraction`` of all the steps, the
   parent kills it with SIGKILL (and reaps it, so that its pid is dead);
2. ``snapshot``: reads which steps were committed at the crash, through the engine's
   own API (durably: ``engine.steps(id)``; DBOS: ``DBOSClient.list_workflow_steps``);
3. ``resume``: the new process; its clock starts before the engine is built (imports
   done) and stops when the engine reports every workflow as completed. durably makes the
   leases of dead local processes expire when it opens; DBOS recovers the pending
   workflows of its executor id when it launches.

``completed_step_repeats`` counts the side log's executions of steps that were committed
at the crash beyond their first: it must be 0. A step that was running (not committed)
at the crash may run again: those are counted apart (``reruns_of_uncommitted``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from typing import Any

from scenarios.common import (
    DBOS_ENGINES,
    DEADLINE_S,
    Sizes,
    Target,
    all_done,
    all_done_async,
    dbos_config,
    dbos_settings,
    durably_settings,
    durably_url,
)
from scenarios.process import collect, run_child, spawn

METRIC = ("s_to_all_done", "s")
STEPS = 10  # RECOVERY_STEPS of both apps


def keys(sizes: Sizes) -> list[str]:
    return [f"r-{i:04d}" for i in range(sizes.recovery)]


# -- the parent --------------------------------------------------------------------------


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line for line in f.read().splitlines() if line]
    except FileNotFoundError:
        return []


def drive(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    """One repetition: crash, snapshot, resume; the figures and the repeat check."""
    total = sizes.recovery * STEPS
    kill_at = max(1, int(total * sizes.kill_after_fraction))
    crash = spawn("recovery", engine, target, sizes, phase="crash")
    deadline = time.monotonic() + DEADLINE_S
    while len(_lines(target.side_log)) < kill_at:
        if crash.poll() is not None:
            raise RuntimeError(f"the crash process of {engine} exited early: {collect(crash)}")
        if time.monotonic() > deadline:
            crash.kill()
            raise RuntimeError(f"{engine} never reached {kill_at} steps")
        time.sleep(0.002)
    os.kill(crash.pid, signal.SIGKILL)
    crash.wait()  # reaped: its pid is dead, so durably may expire its leases at once
    at_kill = len(_lines(target.side_log))
    snapshot = run_child("recovery", engine, target, sizes, phase="snapshot")
    resumed = run_child("recovery", engine, target, sizes, phase="resume")

    executions = Counter(tuple(line.split()[:2]) for line in _lines(target.side_log))
    committed = {(k, str(i)) for k, steps in snapshot["committed"].items() for i in steps}
    repeats = sum(executions[s] - 1 for s in committed if executions[s] > 1)
    reruns = sum(n - 1 for s, n in executions.items() if s not in committed and n > 1)
    never_ran = [
        f"{k}:{i}" for k in keys(sizes) for i in range(STEPS) if (k, str(i)) not in executions
    ]
    figures = dict(resumed["figures"])
    figures.update(
        {
            "completed_step_repeats": repeats,
            "reruns_of_uncommitted": reruns,
            "steps_logged_at_kill": at_kill,
            "steps_committed_at_kill": len(committed),
            "workflows_completed_at_kill": snapshot["completed"],
            "steps_never_ran": len(never_ran),
        }
    )
    return {"figures": figures, "settings": resumed["settings"]}


# -- the children ------------------------------------------------------------------------


def phase(name: str, engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    """Run one phase in this (child) process."""
    if engine in DBOS_ENGINES:
        return {"crash": _dbos_crash, "snapshot": _dbos_snapshot, "resume": _dbos_resume}[name](
            engine, target, sizes
        )
    body = {"crash": _durably_crash, "snapshot": _durably_snapshot, "resume": _durably_resume}
    return asyncio.run(body[name](engine, target, sizes))


def run(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    raise RuntimeError("the recovery scenario is driven by recovery.drive in the parent")


async def _durably_crash(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from durably.engine import Engine
    from scenarios.durably_app import WORKFLOWS, logged_steps

    async with Engine(WORKFLOWS, backend=durably_url(engine, target)) as eng:
        queued = await asyncio.gather(*(eng.queue(logged_steps, k, id=k) for k in keys(sizes)))
        for result in queued:
            result.unwrap()
        await eng.run_worker(concurrency=sizes.recovery)  # until SIGKILL
    raise RuntimeError("the crash process was not killed")


async def _durably_snapshot(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from durably.engine import Engine
    from scenarios.durably_app import WORKFLOWS

    committed: dict[str, list[int]] = {}
    async with Engine(WORKFLOWS, backend=durably_url(engine, target)) as eng:
        for k in keys(sizes):
            records = (await eng.steps(k)).unwrap()
            committed[k] = [int(r.name[1:]) for r in records if r.completed_at is not None]
        done = (await eng.list(status="Completed", limit=sizes.recovery)).unwrap()
    return {"committed": committed, "completed": len(done)}


async def _durably_resume(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from durably.engine import Engine
    from scenarios.durably_app import WORKFLOWS, is_completed

    n = sizes.recovery
    started = time.perf_counter()
    eng = Engine(WORKFLOWS, backend=durably_url(engine, target))
    async with eng:
        stop = asyncio.Event()
        worker = asyncio.create_task(eng.run_worker(concurrency=n, stop=stop))

        await all_done_async(keys(sizes), lambda k: is_completed(eng, k))
        elapsed = time.perf_counter() - started
        stop.set()
        await worker
        settings = durably_settings(eng, target)
        for k in keys(sizes):
            output = (await eng.result(k)).unwrap()
            if output != sum(range(STEPS)):
                raise RuntimeError(f"workflow {k} returned {output}")
    return {"figures": {"s_to_all_done": elapsed}, "settings": settings}


def _dbos_crash(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from dbos import SetWorkflowID

    from scenarios import dbos_app

    queue = dbos_app.launch(dbos_config(engine, target), queue=True)
    for k in keys(sizes):
        with SetWorkflowID(k):
            queue.enqueue(dbos_app.logged_steps, k)
    time.sleep(DEADLINE_S)  # until SIGKILL
    raise RuntimeError("the crash process was not killed")


def _dbos_snapshot(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from dbos import DBOSClient

    config = dbos_config(engine, target)
    client = DBOSClient(
        system_database_url=config["system_database_url"],
        system_database_engine=config.get("system_database_engine"),
    )
    committed: dict[str, list[int]] = {}
    for k in keys(sizes):
        steps = client.list_workflow_steps(k)
        committed[k] = [int(s["output"]) for s in steps if s["error"] is None]
    done = client.list_workflows(
        workflow_ids=keys(sizes), status="SUCCESS", load_input=False, load_output=False
    )
    client.destroy()
    return {"committed": committed, "completed": len(done)}


def _dbos_resume(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from dbos import DBOS

    from scenarios import dbos_app

    ids = keys(sizes)
    started = time.perf_counter()
    dbos_app.launch(dbos_config(engine, target), queue=True)
    all_done(ids, dbos_app.is_completed)
    elapsed = time.perf_counter() - started
    settings = dbos_settings(target)
    rows = DBOS.list_workflows(workflow_ids=ids, load_input=False)
    wrong = [r.workflow_id for r in rows if r.output != sum(range(STEPS))]
    if len(rows) != len(ids) or wrong:
        raise RuntimeError(f"{len(rows)} recovered DBOS workflows, wrong outputs: {wrong[:5]}")
    return {"figures": {"s_to_all_done": elapsed}, "settings": settings}
