"""Queues with flow control: a capped API, one order per customer at a time, a rate
limit, priority, dedupe and a delay, with two workers sharing one SQLite file.

Run it: ``python examples/queues.py``. Two engines open the same file in this process,
each with its own worker: the limits hold across them (a claim counts and takes slots
in the same transaction), exactly as across processes or machines. Each call writes
when it began and ended; the checks below are made from those times.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import durably
from durably.engine import Engine

QUEUES = [
    durably.Queue("api", concurrency=3),  # a partner API that allows 3 calls at once
    durably.Queue("orders", partition_concurrency=1),  # one order per customer at a time
    durably.Queue("sms", rate="4/1s"),  # at most 4 starts per second
    durably.Queue("reports", concurrency=1),  # one at a time: priority decides the order
]

CALLS: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
"""Per queue: (instance, began, ended) of each call."""


async def call(queue: str, what: str, seconds: float = 0.05) -> str:
    began = time.monotonic()
    await asyncio.sleep(seconds)
    CALLS[queue].append((what, began, time.monotonic()))
    return what


@durably.workflow
async def fetch(n: int) -> str:
    return await durably.step("fetch", lambda: call("api", f"page {n}"))


@durably.workflow
async def process_order(order: dict[str, str]) -> str:
    return await durably.step("process", lambda: call("orders", order["customer"]))


@durably.workflow
async def send_sms(to: str) -> str:
    return await durably.step("send", lambda: call("sms", to, 0.0))


@durably.workflow
async def report(name: str) -> str:
    return await durably.step("build", lambda: call("reports", name, 0.01))


WORKFLOWS = [fetch, process_order, send_sms, report]


def most_at_once(calls: list[tuple[str, float, float]]) -> int:
    """The largest number of calls in progress at one moment."""
    edges = sorted([(b, 1) for _, b, _ in calls] + [(e, -1) for _, _, e in calls])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def overlapped(a: tuple[str, float, float], b: tuple[str, float, float]) -> bool:
    return a[1] < b[2] and b[1] < a[2]


async def queue_everything(engine: Engine) -> list[str]:
    """Queue the work; returns the ids to wait for."""
    ids = []
    for n in range(12):
        ids.append((await engine.queue(fetch, n, id=f"fetch-{n}", queue="api")).unwrap().id)
    for n, customer in enumerate(["c1", "c2", "c1", "c2", "c1"]):
        order = {"id": f"o-{n}", "customer": customer}
        queued = await engine.queue(
            process_order, order, id=f"order-{n}", queue="orders", partition_key=customer
        )
        ids.append(queued.unwrap().id)
    for n in range(6):
        ids.append((await engine.queue(send_sms, f"+1555000{n}", queue="sms")).unwrap().id)
    for name, priority in [("weekly", 5), ("monthly", 5), ("incident", 0)]:
        queued = await engine.queue(report, name, id=name, queue="reports", priority=priority)
        ids.append(queued.unwrap().id)
    return ids


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        backend = f"sqlite:///{Path(folder) / 'queues.db'}"
        first = Engine(WORKFLOWS, backend=backend, queues=QUEUES, poll_interval="50ms")
        second = first.with_options()  # a second worker: same store, queues and workflows
        async with first, second:
            ids = await queue_everything(first)

            # Dedupe: while the first "nightly-export" has not ended, a second is refused.
            nightly = {"queue": "reports", "dedupe_id": "nightly"}
            held = await first.queue(report, "export", id="export-1", **nightly)
            again = await first.queue(report, "export", id="export-2", **nightly)
            cause = again.failure().cause
            assert isinstance(cause, durably.DuplicateWorkflowError)
            print(f"dedupe: {cause.message}")
            ids.append(held.unwrap().id)

            # Delay: not started before 300 ms from now.
            queued_at = time.monotonic()
            ids.append((await first.queue(send_sms, "+15559999", delay="300ms")).unwrap().id)

            for stats in (await first.queue_stats()).unwrap():
                print(f"queue {stats.name}: {stats.waiting} waiting, {stats.running} running")

            stop = asyncio.Event()
            workers = [asyncio.create_task(e.run_worker(stop=stop)) for e in (first, second)]
            for instance_id in ids:
                (await first.result(instance_id, timeout="60s")).unwrap()
            stop.set()
            await asyncio.gather(*workers)

    api = CALLS["api"]
    print(f"api: {len(api)} calls, at most {most_at_once(api)} at once (concurrency=3)")

    orders = CALLS["orders"]
    same = [(a, b) for a in orders for b in orders if a < b and a[0] == b[0]]
    apart = [(a, b) for a in orders for b in orders if a < b and a[0] != b[0]]
    same_overlap = any(overlapped(a, b) for a, b in same)
    apart_overlap = any(overlapped(a, b) for a, b in apart)
    print(
        f"orders: one customer's orders overlapped: {same_overlap}; "
        f"two customers' orders overlapped: {apart_overlap}"
    )

    # The rate counts starts on the engine's clock; a call begins a moment after its
    # start, so the calls show the rate give or take those moments.
    sms = sorted(began for to, began, _ in CALLS["sms"] if to != "+15559999")
    burst = sum(1 for b in sms if b < sms[0] + 0.5)
    later = sms[burst] - sms[0] if burst < len(sms) else 0.0
    print(f"sms: {len(sms)} sent, {burst} at once, the others {later:.1f} s later (rate 4/1s)")

    delayed = next(began for to, began, _ in CALLS["sms"] if to == "+15559999")
    print(f"delay: the delayed sms started {delayed - queued_at:.2f} s after it was queued")

    order = [name for name, _, _ in CALLS["reports"]]
    print(f"reports in the order they ran: {order}")


if __name__ == "__main__":
    asyncio.run(main())
