"""A queue's cap survives dying and stalled workers (PostgreSQL, 4 worker processes).

A queue with ``concurrency=5`` (and ``worker_concurrency=2``) runs 60 one-step
workflows (each step awaits 0.3 s and logs its start and end). Once two workers run
something, one of them is SIGKILLed and the other SIGSTOPped while they hold slots;
the stopped one is let go again (SIGCONT) after its lease expired. Then:

- every workflow completes, and throughput recovers once the leases expire;
- the cap counts instances: sampled from the database every 50 ms, never more than 5
  instances of the queue hold a slot, nor more than 5 are started and not final;
- in the side log, never more than 5 distinct instances have an open interval, an
  execution of the killed worker counting until the kill, one of the stopped worker
  until its lease expired (after that it may not commit: its instance is another's).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import attrs
import psycopg
import pytest

from durably import Queue
from durably.domain.status import Completed
from durably.engine import Engine
from tests.integration.processes import backend_url, trials
from tests.integration.support import ChildProcess, read_lines, spawn
from tests.integration.worker_child import LEASE, POLL, WORKFLOWS, Slot, slotted

pytestmark = pytest.mark.timeout(240)

CAP = 5
COUNT = 60
STEP_S = 0.3
LEASE_S = LEASE.duration_ms / 1000


@attrs.frozen
class Interval:
    instance: str
    pid: int
    start: float
    end: float | None


def intervals(side: Path) -> list[Interval]:
    """Every step execution, paired start with end (``end`` ``None``: it never ended)."""
    open_: dict[tuple[str, int], float] = {}
    found: list[Interval] = []
    for line in read_lines(side):
        what, instance, _, pid, at = line.split()
        if what == "start":
            open_[(instance, int(pid))] = float(at)
        else:
            began = open_.pop((instance, int(pid)))
            found.append(Interval(instance, int(pid), began, float(at)))
    found += [Interval(i, pid, began, None) for (i, pid), began in open_.items()]
    return found


def most_instances_at_once(spans: list[tuple[str, float, float]]) -> int:
    """The largest number of distinct instances with an open span at one moment."""
    moments = sorted({s for _, s, _ in spans})
    return max(
        (len({i for i, s, e in spans if s <= at < e}) for at in moments),
        default=0,
    )


@pytest.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    async with backend_url("postgres", tmp_path, "queue_faults") as url:
        yield url


async def sample(url: str, stop: asyncio.Event, highest: list[int]) -> None:
    """Every 50 ms: slots held and instances started and not final, of the queue."""
    parts = urlsplit(url)
    schema = parse_qs(parts.query)["schema"][0]
    conn = await psycopg.AsyncConnection.connect(parts._replace(query="").geturl())
    try:
        while not stop.is_set():
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE slot),"
                " count(*) FILTER (WHERE status IN ('Running', 'Paused'))"
                f" FROM {schema}.instances WHERE queue = 'capped'"
            )
            row = await cur.fetchone()
            assert row is not None
            highest[0] = max(highest[0], int(row[0]))
            highest[1] = max(highest[1], int(row[1]))
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def running_now(side: Path) -> dict[int, set[str]]:
    """Per worker pid, the instances whose step has started and not ended."""
    found: dict[int, set[str]] = {}
    for span in intervals(side):
        if span.end is None:
            found.setdefault(span.pid, set()).add(span.instance)
    return found


@pytest.mark.parametrize("trial", trials(1, 5))
async def test_a_killed_and_a_stopped_worker_never_break_the_cap(
    trial: int, pg_url: str, tmp_path: Path
) -> None:
    rng = random.Random(f"queue-faults-{trial}")
    side = tmp_path / "side.log"
    # Two at most per worker: the five slots are spread over three workers or more.
    queues = [Queue("capped", concurrency=CAP, worker_concurrency=2)]
    declared = json.dumps([attrs.asdict(q) for q in queues])
    async with Engine(
        WORKFLOWS, backend=pg_url, lease=LEASE, poll_interval=POLL, queues=queues
    ) as engine:
        ids = [f"c{i}" for i in range(COUNT)]
        for iid in ids:
            (await engine.queue(slotted, Slot(str(side), STEP_S), id=iid, queue="capped")).unwrap()
        children: list[ChildProcess] = [
            spawn("worker_child.py", [pg_url, declared], tmp_path) for _ in range(4)
        ]
        stop = asyncio.Event()
        highest = [0, 0]
        sampler = asyncio.get_running_loop().create_task(sample(pg_url, stop, highest))
        began = time.monotonic()
        try:
            for child in children:
                child.expect("ready")
            # Wait until two workers hold slots, then kill one and stop the other.
            busy: list[int] = []
            for _ in range(600):
                busy = [pid for pid, held in running_now(side).items() if held]
                if len(busy) >= 2:
                    break
                await asyncio.sleep(0.02)
            assert len(busy) >= 2, f"never two busy workers: {read_lines(side)}"
            killed_pid, stopped_pid = rng.sample(busy, 2)
            by_pid = {c.pid: c for c in children}
            by_pid[killed_pid].kill()
            killed_at = time.time()
            by_pid[stopped_pid].signal(signal.SIGSTOP)
            stopped_at = time.time()
            await asyncio.sleep(LEASE_S + 1.5)  # past the stopped worker's lease
            by_pid[stopped_pid].signal(signal.SIGCONT)
            for iid in ids:
                while not isinstance((await engine.status(iid)).unwrap().status, Completed):
                    assert time.monotonic() - began < 180, f"{iid} never completed"
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await sampler
            for child in children:
                child.kill()
    assert highest[0] <= CAP, f"{highest[0]} slots held at once"
    assert highest[1] <= CAP, f"{highest[1]} instances started and not final at once"
    spans: list[tuple[str, float, float]] = []
    for span in intervals(side):
        end = span.end if span.end is not None else float("inf")
        if span.pid == killed_pid:
            end = min(end, killed_at)
        elif span.pid == stopped_pid and span.start < stopped_at:
            end = min(end, stopped_at + LEASE_S)
        if end == float("inf"):
            continue  # a step of a live worker whose end the log never got: none expected
        spans.append((span.instance, span.start, end))
    assert most_instances_at_once(spans) <= CAP
    ended = {s.instance for s in intervals(side) if s.end is not None}
    assert ended == set(ids)
