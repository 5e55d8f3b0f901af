"""Child workflows and parallel steps (coordination.md section 2), on memory, SQLite and
PostgreSQL. The engines run on a ``ManualClock`` and are driven by ``run_until_idle``:
a child is queued, a worker runs it, and its end makes its waiting parent due.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import durably
from durably.domain.status import Cancelled, Completed, Failed, Paused
from durably.engine import Engine, Lease
from durably.testing import ManualClock
from tests.integration.pg_support import acquire_database, drop_schema, engine_url, release_database

pytestmark = pytest.mark.timeout(90)

T0 = 1_767_225_600_000
HOUR = 3_600_000
LEASE = Lease(duration="30s", renew_every="10s")

ran: list[str] = []


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A backend URL (one store per test)."""
    if request.param == "memory":
        yield "memory://"
        return
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'children.db'}"
        return
    dsn = acquire_database()
    schema = f"children_{abs(hash(request.node.name)) % 10**10}"
    try:
        yield engine_url(dsn, schema)
    finally:
        await asyncio.to_thread(drop_schema, dsn, schema)
        release_database()


@durably.workflow
async def invoice(customer: int) -> int:
    a = await durably.step("a", lambda: customer)
    b = await durably.step("b", lambda: a * 10)
    return await durably.step("c", lambda: b + 1)


@durably.workflow
async def doomed(n: int) -> int:
    def boom() -> int:
        raise LookupError(f"no customer {n}")

    return await durably.step("lookup", boom)


@durably.workflow
async def sleepy(n: int) -> int:
    await durably.sleep("1h", name="nap")
    return n


@durably.workflow
async def fan_out(n: int) -> int:
    totals = await durably.gather(*(durably.child(invoice, c) for c in range(n)))
    return sum(totals)


@durably.workflow
async def catches(n: int) -> str:
    try:
        await durably.child(doomed, n)
    except durably.ChildWorkflowError as e:
        ran.append(f"{e.status}: {e.error.type if e.error else None}")
        child_id = e.child_id
        return await durably.step("after", lambda: f"went on after {child_id}")
    return "unreachable"


@durably.workflow
async def waits_for_sleepy(n: int) -> str:
    try:
        slept: int = await durably.child(sleepy, n)
        return str(slept)
    except durably.ChildWorkflowError as e:
        return f"{e.status}: {e.reason}"


@durably.workflow
async def handle_later(n: int) -> list[int]:
    handle = await durably.start_child(invoice, n)
    ran.append(f"started {handle.id}")
    mine = await durably.step("mine", lambda: n)
    return [mine, await handle.result()]


async def after_ms(ms: int, value: int) -> int:
    await asyncio.sleep(ms / 1000)
    ran.append(f"finished {value}")
    return value


@durably.workflow
async def out_of_order(n: int) -> list[int]:
    # Branch i takes (n - i) * 20 ms: they finish in reverse order.
    first = await durably.gather(
        *(durably.step("s", functools.partial(after_ms, (n - i) * 20, i)) for i in range(n))
    )
    await durably.sleep("1h")
    second = await durably.gather(
        *(durably.step("s", functools.partial(after_ms, 1, i + 100)) for i in range(n))
    )
    return [*first, *second]


@durably.workflow
async def unknown_child(n: int) -> int:
    return int(await durably.child("no-such-workflow", n))


@durably.workflow
async def not_durable(n: int) -> Any:
    return await durably.gather(durably.step("ok", lambda: 1), asyncio.sleep(0))


ENGINES: list[Engine] = []
"""The engine of the running test (for a step that looks at the store)."""


@durably.workflow
async def gather_fails(n: int) -> Any:
    async def boom() -> int:
        # Once the sibling branch has created its child, so that there is one to cancel.
        for _ in range(500):
            if await ENGINES[0].host.instance(f"{durably.context().workflow_id}/sleepy"):
                break
            await asyncio.sleep(0.01)
        raise ValueError("branch 2 broke")

    return await durably.gather(durably.child(sleepy, n), durably.step("breaks", boom))


@durably.workflow
async def mixed(n: int) -> list[Any]:
    return await durably.gather(
        durably.step("now", lambda: "step"),
        durably.child(invoice, n),
        durably.sleep("1h", name="wait-an-hour"),
        durably.wait_for_event("go"),
    )


@durably.workflow
async def custom_id(n: int) -> int:
    total: int = await durably.child(invoice, n, id=f"invoice-for-{n}")
    return total


WORKFLOWS: list[durably.WorkflowDefinition[Any, Any]] = [
    invoice,
    doomed,
    sleepy,
    fan_out,
    catches,
    waits_for_sleepy,
    handle_later,
    out_of_order,
    unknown_child,
    not_durable,
    gather_fails,
    mixed,
    custom_id,
]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def engine(url: str, clock: ManualClock) -> AsyncIterator[Engine]:
    ran.clear()
    async with Engine(WORKFLOWS, backend=url, clock=clock, lease=LEASE) as opened:
        ENGINES[:] = [opened]
        yield opened


async def status_of(engine: Engine, instance_id: str) -> Any:
    return (await engine.status(instance_id)).unwrap().status


async def test_a_fan_out_sums_its_children_with_ids_from_the_parent(engine: Engine) -> None:
    started = (await engine.start(fan_out, 5, id="month")).unwrap()
    assert isinstance(started.status, Paused)
    assert started.status.reason == "child"
    await engine.run_until_idle()
    assert (await engine.result("month")).unwrap() == sum(c * 10 + 1 for c in range(5))
    report = (await engine.status("month")).unwrap()
    ids = ["month/invoice", *(f"month/invoice#{i}" for i in range(2, 6))]
    assert sorted(report.children) == sorted(ids)
    for child_id in ids:
        assert isinstance(await status_of(engine, child_id), Completed)
        assert [s.name for s in (await engine.steps(child_id)).unwrap()] == ["a", "b", "c"]


async def test_a_failed_child_raises_in_the_parent_which_goes_on(engine: Engine) -> None:
    (await engine.start(catches, 3, id="p")).unwrap()
    await engine.run_until_idle()
    assert (await engine.result("p")).unwrap() == "went on after p/doomed"
    assert ran == ["Failed: LookupError"]
    child = await status_of(engine, "p/doomed")
    assert isinstance(child, Failed)


async def test_a_cancelled_child_raises_in_the_parent(engine: Engine) -> None:
    (await engine.start(waits_for_sleepy, 1, id="w")).unwrap()
    await engine.run_until_idle()  # the child runs, and sleeps
    assert isinstance(await status_of(engine, "w/sleepy"), Paused)
    assert (await engine.cancel("w/sleepy", reason="not needed")).unwrap().cancelled
    await engine.run_until_idle()
    assert (await engine.result("w")).unwrap() == "Cancelled: not needed"


async def test_start_child_then_result(engine: Engine) -> None:
    (await engine.start(handle_later, 4, id="h")).unwrap()
    await engine.run_until_idle()
    assert (await engine.result("h")).unwrap() == [4, 41]
    assert ran.count("started h/invoice") >= 1


async def test_gather_returns_in_argument_order_and_a_replay_sees_the_same_keys(
    engine: Engine, clock: ManualClock
) -> None:
    (await engine.start(out_of_order, 4, id="o")).unwrap()
    assert [r for r in ran if r.startswith("finished")][:4] == [
        "finished 3",
        "finished 2",
        "finished 1",
        "finished 0",
    ]
    clock.time_ms += HOUR
    await engine.run_until_idle()  # the replay: the first gather from its records
    assert (await engine.result("o")).unwrap() == [0, 1, 2, 3, 100, 101, 102, 103]
    by_key = {}
    for step in (await engine.steps("o")).unwrap():
        stored = await engine.host.read("o", f"step:{step.name}:result")
        assert stored is not None
        by_key[step.name] = json.loads(stored)["value"]
    assert by_key == {
        "s": 0,
        "s#2": 1,
        "s#3": 2,
        "s#4": 3,
        "s#5": 100,
        "s#6": 101,
        "s#7": 102,
        "s#8": 103,
    }
    assert len([r for r in ran if r.startswith("finished")]) == 8  # nothing ran twice


async def test_a_parent_cancelled_while_waiting_cancels_its_children(engine: Engine) -> None:
    (await engine.start(waits_for_sleepy, 2, id="pc")).unwrap()
    await engine.run_until_idle()
    assert isinstance(await status_of(engine, "pc/sleepy"), Paused)
    assert (await engine.cancel("pc", reason="stop")).unwrap().cancelled
    await engine.run_until_idle()
    assert isinstance(await status_of(engine, "pc"), Cancelled)
    child = await status_of(engine, "pc/sleepy")
    assert isinstance(child, Cancelled)
    assert child.reason == "parent cancelled"


async def test_an_unregistered_child_workflow_fails_at_the_call(engine: Engine) -> None:
    status = (await engine.start(unknown_child, 1, id="u")).unwrap().status
    assert isinstance(status, Failed)
    assert status.error.type == "WorkflowNotFoundError"
    assert "'no-such-workflow'" in status.error.message
    assert (await engine.status("u")).unwrap().children == ()


async def test_a_non_durable_awaitable_in_gather_is_a_type_error_naming_it(
    engine: Engine,
) -> None:
    status = (await engine.start(not_durable, 1, id="nd")).unwrap().status
    assert isinstance(status, Failed)
    assert status.error.type == "TypeError"
    assert "argument 1 is the coroutine sleep()" in status.error.message
    assert (await engine.steps("nd")).unwrap() == []  # nothing ran


async def test_a_failing_branch_cancels_the_others_and_their_children(engine: Engine) -> None:
    status = (await engine.start(gather_fails, 1, id="gf")).unwrap().status
    assert isinstance(status, Failed)
    assert status.error.type == "ValueError"
    await engine.run_until_idle()
    child = await status_of(engine, "gf/sleepy")
    assert isinstance(child, Cancelled)
    assert child.reason == "gather failed"


async def test_gather_mixes_steps_children_sleeps_and_waits(
    engine: Engine, clock: ManualClock
) -> None:
    (await engine.start(mixed, 2, id="mx")).unwrap()
    await engine.run_until_idle()  # the child ends; the sleep and the wait still pause
    status = await status_of(engine, "mx")
    assert isinstance(status, Paused)
    assert status.resume_at == T0 + HOUR  # the sleep's end is the earliest deadline
    assert "event:go" in status.waits
    assert (await engine.send_event("mx", "go", "ready")).unwrap().delivered
    await engine.run_until_idle()
    assert isinstance(await status_of(engine, "mx"), Paused)  # the sleep is not over
    clock.time_ms += HOUR
    await engine.run_until_idle()
    assert (await engine.result("mx")).unwrap() == ["step", 21, None, "ready"]


async def test_a_custom_child_id_is_used_and_must_not_belong_to_another_instance(
    engine: Engine,
) -> None:
    (await engine.start(custom_id, 7, id="c1")).unwrap()
    await engine.run_until_idle()
    assert (await engine.result("c1")).unwrap() == 71
    assert (await engine.status("c1")).unwrap().children == ("invoice-for-7",)
    # Another parent asking for the same child id is told the id is taken.
    status = (await engine.start(custom_id, 7, id="c2")).unwrap().status
    assert isinstance(status, Failed)
    assert status.error.type == "ValueError"
    assert "'invoice-for-7' already exists as 'c1''s" in status.error.message


async def test_outside_an_engine_children_are_refused() -> None:
    with pytest.raises(durably.WorkflowScopeError, match="child"):
        await durably.child(invoice, 1)
    with pytest.raises(durably.WorkflowScopeError, match="no engine to start children"):
        await fan_out.execute(2)
    with pytest.raises(durably.WorkflowScopeError, match="gather"):
        await durably.gather()
