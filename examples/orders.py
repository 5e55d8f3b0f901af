"""An order workflow: a flaky payment that retries, a step with a timeout, a durable sleep.

Used by ``make demo`` (``examples/demo.py``); also an app for the CLI, e.g.
``durably start process_order --input '"o-9"' --wait --app examples.orders:WORKFLOWS``.
Run directly (``python examples/orders.py``), it runs one order and cancels another on a
SQLite file in a temporary folder, and says what happened.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import durably
from durably import Retry
from durably.engine import Engine

# Where each step records that it ran (the demo reads it to show nothing ran twice).
RUN_LOG = Path(os.environ.get("DURABLY_DEMO_LOG", "durably-demo-runs.log"))


def record(step: str) -> None:
    """Append ``<instance> <step> <attempt>`` to the run log, durably."""
    info = durably.step_info()
    with RUN_LOG.open("a", encoding="utf-8") as log:
        log.write(f"{info.workflow_id} {step} {info.attempt}\n")
        log.flush()
        os.fsync(log.fileno())


@durably.step(retry=Retry(max_attempts=3, delay="200ms", jitter=False))
async def charge_card(order_id: str) -> str:
    """Fails on its first two attempts (a flaky payment provider), then succeeds."""
    record("charge_card")
    if durably.step_info().attempt < 3:
        raise ConnectionError("payment provider timed out")
    return f"receipt-{order_id}"


@durably.step(retry=Retry(max_attempts=2, delay="100ms", jitter=False), timeout="300ms")
async def reserve_stock(order_id: str) -> int:
    """Hangs on its first attempt (cut by the 300 ms timeout), answers on the retry."""
    record("reserve_stock")
    if durably.step_info().attempt == 1:
        await asyncio.sleep(5)
    return 3


@durably.workflow
async def process_order(order_id: str) -> dict[str, object]:
    """Fetch, reserve, charge, wait a moment before shipping, ship."""
    order = await durably.step("fetch_order", lambda: fetch(order_id))
    items = await reserve_stock(order_id)
    receipt = await charge_card(order_id)
    await durably.sleep("1s", name="cool_off")
    tracking = await durably.step("ship", lambda: ship(order_id))
    return {"order": order, "items": items, "receipt": receipt, "tracking": tracking}


def fetch(order_id: str) -> str:
    """Pretend to load the order."""
    record("fetch_order")
    return f"order {order_id}"


def ship(order_id: str) -> str:
    """Pretend to hand the parcel over."""
    record("ship")
    return f"TRACK-{order_id.upper()}"


@durably.workflow
async def long_export(batches: int) -> int:
    """Exports ``batches`` batches, ~120 ms each: the workflow the demo kills mid-run."""
    total = 0
    for i in range(batches):

        async def export(i: int = i) -> int:
            record(f"batch-{i}")
            await asyncio.sleep(0.12)
            return i

        total += await durably.step(f"batch-{i}", export)
    return total


WORKFLOWS = [process_order, long_export]


async def _tour(folder: Path) -> None:
    """One order run to completion, one cancelled while it waits; printed as it goes."""
    backend = f"sqlite:///{folder / 'orders.db'}"
    print(f"orders example, on {backend}")
    async with Engine(WORKFLOWS, backend=backend, poll_interval="100ms") as engine:
        print("order o-1: process_order fetches, reserves stock, charges, sleeps 1s, ships")
        output = (await engine.run(process_order, "o-1", id="order-o-1", timeout="60s")).unwrap()
        for step in (await engine.steps("order-o-1")).unwrap():
            failed = step.attempt - 1
            before = f", after {failed} failed attempt{'s' if failed > 1 else ''}" if failed else ""
            print(f"  step {step.name} completed on attempt {step.attempt}{before}")
        print(f"  completed after its durable sleep: {output}")
        (await engine.queue(process_order, "o-2", id="order-o-2")).unwrap()
        reason = "customer changed their mind"
        cancelled = (await engine.cancel("order-o-2", reason=reason)).unwrap()
        print(f"order o-2: queued, then cancelled with reason {reason!r}")
        print(f"  it was {cancelled.previous_status}; its result: ", end="")
        print((await engine.result("order-o-2")).failure())


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="durably-orders-") as tmp:
        RUN_LOG = Path(tmp) / "runs.log"  # where record() logs each step's run
        asyncio.run(_tour(Path(tmp)))
