"""``idle_worker`` (issue 18): how many statements an idle worker sends to its database,
and how many a short run costs per completed step; each engine as shipped.

One process per repetition, with a queue ``q`` (``concurrency=50``) registered:

- durably: ``Engine(..., queues=[Queue("q", concurrency=50)])`` with its default poll
  interval (1 s) and ``engine.run_worker()``; on PostgreSQL it waits on
  ``LISTEN/NOTIFY`` and polls at most once per poll interval.
- DBOS: ``DBOS.register_queue("q", concurrency=50)`` with DBOS's default queue polling
  interval (1 s), and everything else DBOS runs by itself (its internal queue, its
  notification listener: on SQLite a poll every 1 s, on PostgreSQL ``LISTEN``).

1. After a warm-up (3 s; 12 s on PostgreSQL, ``idle_settle_s``), the idle window:
   ``idle_s`` seconds (30; 5 with ``--quick``) with nothing to do. ``stmts_per_s``: on
   PostgreSQL the transactions the server counted for the bench database
   (``pg_stat_database``), on SQLite the statements SQLite executed
   (``set_trace_callback``); ``client_stmts_per_s``: the statements the process sent
   (psycopg cursors, or SQLite's trace), see ``counting.py`` for why and how.
   ``stmts_per_poll_interval``: ``stmts_per_s`` times the poll interval (1 s for both
   engines as shipped): issue 18's target is at most 1 for durably.
2. Then ``idle_steps`` (200; 50 with ``--quick``) workflows of one step each are
   queued on ``q`` at once and run: ``stmts_per_step`` and ``client_stmts_per_step``
   are the statements from the first submission until the last completed, divided by
   the steps completed. Completion is watched by a thread of the harness over a
   connection of its own, every 20 ms, not counted on the client side and subtracted
   from the server's count; so is the idle rate of step 1 over the 12 s the server's
   count is given to catch up after the run.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from scenarios import counting
from scenarios.common import (
    DBOS_ENGINES,
    Sizes,
    Target,
    dbos_config,
    dbos_settings,
    durably_settings,
    durably_url,
)
from scenarios.watch import Watcher

METRIC = ("stmts_per_s", "per_s")
QUEUE = "q"
CONCURRENCY = 50
# A PostgreSQL backend publishes its counts at most once a second, and one that went
# idle right after a flush keeps them for up to 10 s (PGSTAT_IDLE_INTERVAL): the
# connections that opened the engine publish theirs ~10 s later. So on PostgreSQL the
# idle window starts ``idle_settle_s`` (12 s; 2 s with --quick, less exact) after the
# engine opened, and the server's count of the run is read as long after it ended.
SQLITE_WARMUP_S = 3.0
CHECK_S = 0.02
POLL_INTERVAL_S = 1.0  # durably's default poll interval; DBOS's default queue polling


def _warmup(target: Target, sizes: Sizes) -> float:
    return sizes.idle_settle_s if target.dsn else SQLITE_WARMUP_S


def run(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    counting.install()  # before any connection is opened
    if engine in DBOS_ENGINES:
        return _dbos(engine, target, sizes)
    return asyncio.run(_durably(engine, target, sizes))


# -- the counts -----------------------------------------------------------------------------


class Counts:
    """The client's and (on PostgreSQL) the server's counts at one moment."""

    def __init__(self, target: Target) -> None:
        self.at = time.monotonic()
        self.client = counting.statements()
        self.server = counting.server_transactions(target.dsn) if target.dsn else None


def _figures(
    idle: tuple[Counts, Counts],
    run: tuple[Counts, Counts, Counts],
    checks: int,
    steps: int,
) -> dict[str, float]:
    (i0, i1), (r0, r1, caught_up) = idle, run
    idle_s = i1.at - i0.at
    client_rate = (i1.client - i0.client) / idle_s
    figures = {
        "idle_s": idle_s,
        "client_stmts_per_s": client_rate,
        "client_stmts_per_step": (r1.client - r0.client) / steps,
        "s_run": r1.at - r0.at,
    }
    if i0.server is not None:
        assert i1.server is not None
        assert r0.server is not None
        assert caught_up.server is not None
        server_rate = (i1.server - i0.server) / idle_s
        # The run's transactions: all those counted until the server caught up, less the
        # watcher's and the idle worker's after the run.
        idle_after = server_rate * (caught_up.at - r1.at)
        ran = caught_up.server - r0.server - checks - idle_after
        figures.update(
            stmts_per_s=server_rate,
            stmts_per_step=ran / steps,
            server_idle_transactions=float(i1.server - i0.server),
        )
    else:
        figures.update(stmts_per_s=client_rate, stmts_per_step=figures["client_stmts_per_step"])
    figures["stmts_per_poll_interval"] = figures["stmts_per_s"] * POLL_INTERVAL_S
    return figures


# -- durably ----------------------------------------------------------------------------------


async def _durably(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    import durably
    from durably.engine import Engine
    from scenarios.durably_app import WORKFLOWS, trivial_steps

    queue = durably.Queue(QUEUE, concurrency=CONCURRENCY)
    url = durably_url(engine, target)
    async with Engine(WORKFLOWS, backend=url, queues=[queue]) as eng:
        settings = durably_settings(eng, target)
        stop = asyncio.Event()
        worker = asyncio.create_task(eng.run_worker(stop=stop))
        await asyncio.sleep(_warmup(target, sizes))
        i0 = Counts(target)
        await asyncio.sleep(sizes.idle_s)
        i1 = Counts(target)

        n = sizes.idle_steps
        table = "bench.instances" if target.dsn else "instances"
        watcher = Watcher(
            target,
            f"SELECT count(*) FROM {table} WHERE status = 'Completed'",
            os.path.join(target.folder or "", "durably.db"),
            n,
            CHECK_S,
        )
        r0 = Counts(target)
        queued = await asyncio.gather(
            *(eng.queue(trivial_steps, 1, id=f"s-{i}", queue=QUEUE) for i in range(n))
        )
        for result in queued:
            result.unwrap()
        watcher.start()
        await asyncio.to_thread(watcher.wait)
        r1 = Counts(target)
        await asyncio.sleep(sizes.idle_settle_s if target.dsn else 0)
        caught_up = Counts(target)
        stop.set()
        await worker
        poll_ms = eng.poll_interval_ms
    if poll_ms != POLL_INTERVAL_S * 1000:
        raise RuntimeError(f"durably's poll interval is {poll_ms} ms, not the default 1 s")
    figures = _figures((i0, i1), (r0, r1, caught_up), watcher.queries, n)
    return {"figures": figures, "settings": {**settings, "poll_interval_s": poll_ms / 1000}}


# -- DBOS -------------------------------------------------------------------------------------


def _dbos(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from dbos import DBOS, SetWorkflowID

    from scenarios import dbos_app

    dbos_app.launch(dbos_config(engine, target))
    queue = DBOS.register_queue(QUEUE, concurrency=CONCURRENCY)  # default polling: 1 s
    settings = dbos_settings(target)
    time.sleep(_warmup(target, sizes))
    i0 = Counts(target)
    time.sleep(sizes.idle_s)
    i1 = Counts(target)

    n = sizes.idle_steps
    table = "dbos.workflow_status" if target.dsn else "workflow_status"
    watcher = Watcher(
        target,
        f"SELECT count(*) FROM {table} WHERE status = 'SUCCESS' AND name = 'trivial_steps'",
        os.path.join(target.folder or "", "dbos.sqlite"),
        n,
        CHECK_S,
    )
    r0 = Counts(target)
    for i in range(n):
        with SetWorkflowID(f"s-{i}"):
            queue.enqueue(dbos_app.trivial_steps, 1)
    watcher.start()
    watcher.wait()
    r1 = Counts(target)
    time.sleep(sizes.idle_settle_s if target.dsn else 0)
    caught_up = Counts(target)
    figures = _figures((i0, i1), (r0, r1, caught_up), watcher.queries, n)
    return {"figures": figures, "settings": {**settings, "queue_poll_s": POLL_INTERVAL_S}}
