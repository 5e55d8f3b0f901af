"""The same workflows for DBOS Transact (imported only by DBOS's child processes)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from dbos import DBOS

from scenarios.common import DEADLINE_S, append_line, mark_stepped

RECOVERY_STEPS = 10
QUEUE = "bench"
TOPIC = "go"
# How often the queue looks for work (DBOS's default is 1 s): short, so that the queue's
# polling does not bound DBOS's figures. BENCH_DBOS_QUEUE_POLL_S overrides it.
QUEUE_POLL_S = float(os.environ.get("BENCH_DBOS_QUEUE_POLL_S", "0.05"))


@DBOS.step()
def trivial(i: int) -> int:
    return i


@DBOS.workflow()
def trivial_steps(n: int) -> int:
    """``n`` steps that return their index; the workflow returns their sum."""
    total = 0
    for i in range(n):
        total += trivial(i)
    return total


@DBOS.step()
def logged(key: str, i: int) -> int:
    append_line(os.environ["BENCH_SIDE_LOG"], f"{key} {i} {os.getpid()}")
    return i


@DBOS.workflow()
def logged_steps(key: str) -> int:
    """``RECOVERY_STEPS`` steps, each noting its execution in the side log first."""
    total = 0
    for i in range(RECOVERY_STEPS):
        total += logged(key, i)
    return total


@DBOS.step()
def stepped(key: str) -> int:
    return mark_stepped(key)


@DBOS.workflow()
def awaits_event(key: str) -> list[int]:
    """Receive a message on ``TOPIC``, then one step that notes when it ran
    (``mark_stepped``): ``[payload, the step's clock_ns]``."""
    payload = DBOS.recv(TOPIC, timeout_seconds=DEADLINE_S)
    if payload is None:
        raise RuntimeError(f"{key}: no message within {DEADLINE_S}s")
    return [payload, stepped(key)]


@DBOS.step()
def one(i: int) -> int:
    return i


@DBOS.workflow()
def one_step(i: int) -> int:
    """One step that returns ``i`` (a child of ``fan_out``)."""
    return one(i)


@DBOS.workflow()
def fan_out(n: int) -> int:
    """``n`` child workflows started with ``DBOS.start_workflow`` (each runs in a thread
    of DBOS's executor), then awaited through their handles; the sum of their outputs."""
    handles = [DBOS.start_workflow(one_step, i) for i in range(n)]
    return sum(h.get_result() for h in handles)


@DBOS.step()
async def nap(i: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return i


@DBOS.workflow()
async def parallel_naps(args: list[float]) -> int:
    """``args = [n, seconds]``: ``n`` async steps at once (``asyncio.gather`` in an async
    workflow, which DBOS supports), each awaiting ``seconds``; the sum of their indexes."""
    n, seconds = int(args[0]), args[1]
    outputs = await asyncio.gather(*(nap(i, seconds) for i in range(n)))
    return sum(outputs)


def is_waiting(workflow_id: str) -> bool:
    """Whether the workflow waits in ``DBOS.recv``: its timeout is recorded (a
    ``DBOS.sleep`` step), which ``recv`` does after registering its waiter and checking
    for a message already there, just before it waits."""
    steps = DBOS.list_workflow_steps(workflow_id, load_output=False)
    return any(s["function_name"] == "DBOS.sleep" for s in steps)


def launch(config: dict[str, object], *, queue: bool = False) -> Any:
    """Construct and launch DBOS; with ``queue``, register the benchmark queue and return it.

    Only the scenarios that use the queue register it: its polling thread would
    otherwise load the other scenarios' figures.
    """
    DBOS(config=config)  # type: ignore[arg-type]
    DBOS.launch()
    if not queue:
        return None
    return DBOS.register_queue(QUEUE, polling_interval_sec=QUEUE_POLL_S)


def is_completed(workflow_id: str) -> bool:
    """Whether the workflow completed (one that ended otherwise fails the run)."""
    status = DBOS.get_workflow_status(workflow_id)
    if status is None or status.status in ("PENDING", "ENQUEUED", "DELAYED"):
        return False
    if status.status != "SUCCESS":
        raise RuntimeError(f"{workflow_id} ended as {status.status}")
    return True
