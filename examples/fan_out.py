"""Fan out, fan in: a monthly run that invoices every customer in a child workflow each,
and an order that calls three services at once.

Run it: ``python examples/fan_out.py``. It runs on a SQLite file in a temporary folder,
with a worker in this process: the children are queued instances, which any worker
(here, or in another process) runs; each child's end makes its waiting parent due.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import durably
from durably.engine import Engine

CUSTOMERS = {"acme": 120, "globex": 80, "initech": 45, "umbrella": 0}


@durably.workflow
async def invoice(customer: str) -> int:
    amount = await durably.step("amount", lambda: CUSTOMERS[customer])
    if amount == 0:
        raise ValueError(f"nothing to invoice for {customer}")
    await durably.step("send", lambda: f"invoice of {amount} sent to {customer}")
    return amount


@durably.workflow
async def monthly_invoices(month: str) -> str:
    customers = await durably.step("customers", lambda: sorted(CUSTOMERS))
    billed = [c for c in customers if CUSTOMERS[c] > 0]
    amounts = await durably.gather(*(durably.child(invoice, c) for c in billed))
    try:
        await durably.child(invoice, "umbrella")  # a child that fails
    except durably.ChildWorkflowError as e:
        return f"{month}: {len(amounts)} invoices, {sum(amounts)} in total; {e}"
    return f"{month}: {len(amounts)} invoices, {sum(amounts)} in total"


CALLS: list[tuple[float, float]] = []
"""(start, end) of each service call, to show that they overlapped."""


async def call(service: str) -> str:
    began = time.monotonic()
    await asyncio.sleep(0.2)  # a slow API: the three calls overlap
    CALLS.append((began, time.monotonic()))
    return f"{service} ok"


@durably.workflow
async def place_order(order_id: str) -> list[str]:
    return await durably.gather(
        durably.step("charge", lambda: call("payments")),
        durably.step("reserve", lambda: call("stock")),
        durably.step("notify", lambda: call("email")),
    )


async def main(folder: Path) -> None:
    url = f"sqlite:///{folder / 'billing.db'}"
    async with Engine([invoice, monthly_invoices, place_order], backend=url) as engine:
        stop = asyncio.Event()
        worker = asyncio.get_running_loop().create_task(engine.run_worker(stop=stop))
        try:
            await engine.start(monthly_invoices, "2026-11", id="invoices-2026-11")
            print((await engine.result("invoices-2026-11", timeout="30s")).unwrap())
            children = (await engine.status("invoices-2026-11")).unwrap().children
            print(f"children: {', '.join(children)}")
            began = time.monotonic()
            calls = (await engine.run(place_order, "o-1", id="order-o-1")).unwrap()
            took = time.monotonic() - began
            print(f"order o-1: {', '.join(calls)} in {took:.1f}s (three 0.2s calls)")
            overlapped = max(s for s, _ in CALLS) < min(e for _, e in CALLS)
            print(f"the three calls {'ran at once' if overlapped else 'ran one after another'}")
        finally:
            stop.set()
            await worker


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="durably-fan-out-") as tmp:
        asyncio.run(main(Path(tmp)))
