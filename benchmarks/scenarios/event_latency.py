"""``event_latency``: an event sent from one process to a workflow waiting in another.

Two child processes per repetition, driven by ``drive`` in the parent:

1. ``worker``: runs the workflows (``awaits_event``: wait for an event, then a step that
   notes ``stepped <key> <clock_ns>`` in the side log). One at a time: it starts one
   workflow, makes sure it waits (durably: ``engine.start`` answered ``Paused`` on the
   event; DBOS: ``recv`` recorded its timeout, just before it waits), notes ``waiting
   <key>`` in the side log, waits for the workflow's end, then starts the next one. Its
   durably engine runs ``run_worker`` with ``poll_interval=EVENT_POLL_S``; DBOS as
   configured (``dbos``: its listener polls SQLite every 1 s; ``dbos_poll``: every
   ``EVENT_POLL_S``).
2. ``send``: for each workflow, waits for its ``waiting`` line, then a random pause
   (uniform in one poll period of the engine, so that sends fall anywhere in the
   worker's poll cycle, as a real sender's would), reads the clock and sends one event
   (durably: ``engine.send_event`` from an engine of its own that runs no worker;
   DBOS: ``DBOSClient.send``), then waits for the ``stepped`` line.

The latency of a send is the step's ``clock_ns`` minus the clock read just before the
send call: it includes the send's own commit. Both processes read ``CLOCK_MONOTONIC``,
which Linux shares between processes. Figures: median, p99, mean and max of
``event_sends`` sends, and the median time the send call itself took.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from scenarios.common import (
    DBOS_ENGINES,
    EVENT_POLL_S,
    Sizes,
    Target,
    append_line,
    clock_ns,
    dbos_config,
    dbos_settings,
    durably_settings,
    durably_url,
)
from scenarios.process import collect, run_child, spawn

METRIC = ("s_latency_median", "s")
# DBOS's notification listener polls SQLite every second unless configured otherwise.
DBOS_DEFAULT_POLL_S = 1.0
# How long a sender waits for one line of the side log before giving up.
MARK_TIMEOUT_S = 120.0
# How often a sender reads the side log (the latency is timed by the step, not by this).
MARK_POLL_S = 0.001


def keys(sizes: Sizes) -> list[str]:
    return [f"ev-{i:04d}" for i in range(sizes.event_sends)]


def poll_period(engine: str, backend: str) -> float:
    """The poll period of ``engine`` on ``backend`` (the range of the random pause before
    each send; on PostgreSQL, where both engines are woken by NOTIFY, ``EVENT_POLL_S``)."""
    if engine == "dbos" and backend == "sqlite":
        return DBOS_DEFAULT_POLL_S
    return EVENT_POLL_S


def latency_figures(latencies: list[float]) -> dict[str, float]:
    """Median, p99, mean and max of ``latencies`` (seconds)."""
    ordered = sorted(latencies)
    if len(ordered) > 1:
        p99 = statistics.quantiles(ordered, n=100, method="inclusive")[98]
    else:
        p99 = ordered[0]
    return {
        "s_latency_median": statistics.median(ordered),
        "s_latency_p99": p99,
        "s_latency_mean": statistics.fmean(ordered),
        "s_latency_max": ordered[-1],
    }


# -- the parent --------------------------------------------------------------------------


def drive(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    """One repetition: the worker and the sender, side by side; the sender's figures."""
    worker = spawn("event_latency", engine, target, sizes, phase="worker")
    try:
        sent = run_child("event_latency", engine, target, sizes, phase="send")
    except BaseException:
        worker.kill()
        worker.wait()
        raise
    done = collect(worker)
    return {"figures": sent["figures"], "settings": done["settings"]}


def run(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    raise RuntimeError("the event_latency scenario is driven by event_latency.drive")


def phase(name: str, engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    """Run one phase in this (child) process."""
    if engine in DBOS_ENGINES:
        return {"worker": _dbos_worker, "send": _dbos_send}[name](engine, target, sizes)
    body = {"worker": _durably_worker, "send": _durably_send}
    return asyncio.run(body[name](engine, target, sizes))


# -- the side log -------------------------------------------------------------------------


class Marks:
    """The lines of the side log, read as they come: ``waiting <key>`` and ``stepped
    <key> <clock_ns>``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.seen: dict[str, str] = {}

    def _read(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.lseek(fd, self.offset, os.SEEK_SET)
            while chunk := os.read(fd, 65536):
                self.offset += len(chunk)
                self.partial += chunk
        finally:
            os.close(fd)
        *lines, self.partial = self.partial.split(b"\n")
        for line in lines:
            what, key, *rest = line.decode().split()
            self.seen[f"{what} {key}"] = rest[0] if rest else ""

    def found(self, mark: str) -> str | None:
        if mark not in self.seen:
            self._read()
        return self.seen.get(mark)

    def wait(self, mark: str) -> str:
        deadline = time.monotonic() + MARK_TIMEOUT_S
        while (value := self.found(mark)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {mark!r} in the side log after {MARK_TIMEOUT_S}s")
            time.sleep(MARK_POLL_S)
        return value

    async def wait_async(self, mark: str) -> str:
        deadline = time.monotonic() + MARK_TIMEOUT_S
        while (value := self.found(mark)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {mark!r} in the side log after {MARK_TIMEOUT_S}s")
            await asyncio.sleep(MARK_POLL_S)
        return value


def _check(key: str, index: int, output: Any) -> None:
    if not isinstance(output, list) or output[0] != index:
        raise RuntimeError(f"workflow {key} returned {output!r}, not the payload {index}")


class _Sends:
    """The sender's measurements."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.calls: list[float] = []

    def add(self, before_ns: int, after_ns: int, stepped: str) -> None:
        self.latencies.append((int(stepped) - before_ns) / 1e9)
        self.calls.append((after_ns - before_ns) / 1e9)

    def figures(self) -> dict[str, float]:
        out = latency_figures(self.latencies)
        out["s_send_call_median"] = statistics.median(self.calls)
        return out


# -- durably -----------------------------------------------------------------------------


async def _durably_worker(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from durably.domain.status import Paused
    from durably.engine import Engine
    from scenarios.durably_app import WORKFLOWS, awaits_event

    url = durably_url(engine, target)
    async with Engine(WORKFLOWS, backend=url, poll_interval=f"{EVENT_POLL_S}s") as eng:
        settings = durably_settings(eng, target)
        stop = asyncio.Event()
        worker = asyncio.create_task(eng.run_worker(stop=stop))
        for index, key in enumerate(keys(sizes)):
            started = (await eng.start(awaits_event, key, id=key)).unwrap()
            status = started.status
            if not (isinstance(status, Paused) and status.reason == "event"):
                raise RuntimeError(f"workflow {key} did not wait for its event: {status}")
            append_line(target.side_log, f"waiting {key}")
            _check(key, index, (await eng.result(key)).unwrap())
        stop.set()
        await worker
    return {"figures": {}, "settings": {**settings, "poll_interval_s": EVENT_POLL_S}}


async def _durably_send(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from durably.engine import Engine
    from scenarios.durably_app import EVENT, WORKFLOWS

    marks = Marks(target.side_log)
    order = keys(sizes)
    await marks.wait_async(f"waiting {order[0]}")  # the worker has created the database
    period = poll_period(engine, target.backend)
    sends = _Sends()
    async with Engine(WORKFLOWS, backend=durably_url(engine, target)) as eng:
        for index, key in enumerate(order):
            await marks.wait_async(f"waiting {key}")
            await asyncio.sleep(random.uniform(0, period))
            before = clock_ns()
            sent = (await eng.send_event(key, EVENT, index)).unwrap()
            after = clock_ns()
            if not sent.delivered:
                raise RuntimeError(f"the event to {key} was not delivered: {sent}")
            sends.add(before, after, await marks.wait_async(f"stepped {key}"))
    return {"figures": sends.figures(), "settings": {}}


# -- DBOS --------------------------------------------------------------------------------


def _wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + MARK_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} after {MARK_TIMEOUT_S}s")
        time.sleep(MARK_POLL_S)


def _dbos_worker(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from dbos import DBOS, SetWorkflowID

    from scenarios import dbos_app

    dbos_app.launch(dbos_config(engine, target))
    settings = dbos_settings(target)
    for index, key in enumerate(keys(sizes)):
        with SetWorkflowID(key):
            handle = DBOS.start_workflow(dbos_app.awaits_event, key)
        _wait_until(functools.partial(dbos_app.is_waiting, key), f"{key} is not waiting")
        append_line(target.side_log, f"waiting {key}")
        _check(key, index, handle.get_result())
    poll = DBOS_DEFAULT_POLL_S if engine == "dbos" else EVENT_POLL_S
    return {"figures": {}, "settings": {**settings, "notification_poll_s": poll}}


def _dbos_send(engine: str, target: Target, sizes: Sizes) -> dict[str, Any]:
    from dbos import DBOSClient

    from scenarios.dbos_app import TOPIC

    marks = Marks(target.side_log)
    order = keys(sizes)
    marks.wait(f"waiting {order[0]}")  # the worker has created the database
    period = poll_period(engine, target.backend)
    client = DBOSClient(system_database_url=dbos_config(engine, target)["system_database_url"])
    sends = _Sends()
    try:
        for index, key in enumerate(order):
            marks.wait(f"waiting {key}")
            time.sleep(random.uniform(0, period))
            before = clock_ns()
            client.send(key, index, TOPIC)
            after = clock_ns()
            sends.add(before, after, marks.wait(f"stepped {key}"))
    finally:
        client.destroy()
    return {"figures": sends.figures(), "settings": {}}
