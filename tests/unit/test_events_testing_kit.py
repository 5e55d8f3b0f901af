"""Events under the testing kit: a wait's timeout is driven by the virtual clock, and a
send reaches the waiting workflow through the factory's background worker."""

from __future__ import annotations

import time

import durably
from durably.testing import EngineFactory, VirtualClock

DAY = 86_400_000


@durably.workflow
async def approval(claim: str) -> str:
    await durably.set_event("stage", "waiting")
    try:
        decision = await durably.wait_for_event("approval", timeout="3 days")
    except durably.EventTimeoutError:
        return "expired"
    return "paid" if decision["ok"] else "rejected"


async def test_a_three_day_wait_times_out_in_virtual_time(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    engine = await durably_engine([approval])
    start = durably_clock.now()
    began = time.monotonic()
    await engine.start(approval, "c-1", id="c-1")
    assert (await engine.result("c-1")).unwrap() == "expired"
    assert durably_clock.now() == start + 3 * DAY  # skipped to the deadline, no further
    assert time.monotonic() - began < 5  # virtual days, real milliseconds (bound: stall)


async def test_a_send_is_taken_by_the_background_worker(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    engine = await durably_engine([approval])
    start = durably_clock.now()
    await engine.start(approval, "c-2", id="c-2")
    await durably_clock.advance("1 day")
    assert (await engine.get_event("c-2", "stage")).unwrap() == "waiting"
    assert (await engine.send_event("c-2", "approval", {"ok": True})).unwrap().delivered
    assert (await engine.result("c-2")).unwrap() == "paid"
    assert durably_clock.now() == start + DAY  # resumed by the send, not by the deadline
