"""WorkflowOrchestrator (semantics.md sections 5, 6 and 10), beyond the seed-document tests.

Cancels are in ``test_orchestrator_cancel.py``, storage faults in
``test_orchestrator_faults.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from returns.result import Failure, Result, Success

import durably
from durably.containers import WorkflowLayer
from durably.domain.errors import SerializationError, WorkflowNotFoundError
from durably.domain.status import Completed, Failed, Paused, Pending, Queued
from durably.services import WorkflowStateMachine
from durably.services.types import StartResult, WorkflowStatusResult
from tests.support.orchestrator import Receipt, checkout, failure, harness, two_steps
from tests.support.runtimes import RuntimeFactory

pytestmark = pytest.mark.timeout(10)


# --- start and queue: checks ----------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["start", "queue"])
async def test_an_unknown_workflow_is_an_orchestrator_error_listing_the_names(
    runtimes: RuntimeFactory,
    operation: str,
) -> None:
    h = harness(runtimes, other=two_steps)
    call = durably.WorkflowCall("nope", 1)
    orchestrator = h.orchestrator()
    method = orchestrator.start if operation == "start" else orchestrator.queue
    error = failure(await method(call))
    assert error.operation == operation
    assert isinstance(error.cause, WorkflowNotFoundError)
    assert error.cause.workflow_name == "nope"
    assert error.cause.available_workflows == ("wf", "other")
    assert str(error).startswith(f"{operation} failed")
    assert "'nope' not found" in str(error)
    assert "wf, other" in str(error)
    assert h.handle.storage_snapshot() == {}


async def test_start_on_an_existing_id_with_another_workflow_is_refused_untouched(
    runtimes: RuntimeFactory,
) -> None:
    ran: list[str] = []

    async def other(_: Any) -> None:
        ran.append("other")

    h = harness(runtimes, other=other)
    await h.start()
    before, commits = h.handle.storage_snapshot(), h.handle.commits
    error = failure(await h.orchestrator().start(durably.WorkflowCall("other", "y")))
    assert error.operation == "start"
    assert "already exists as workflow 'wf', not 'other'" in str(error)
    assert h.handle.storage_snapshot() == before
    assert h.handle.commits == commits
    assert ran == []


async def test_idempotent_start_decodes_the_stored_output_to_the_declared_type(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes, checkout)
    first = await h.start("o-7")
    assert first.output == Receipt("o-7", 42)
    assert h.handle.storage_snapshot()["workflow:output"] == {"order_id": "o-7", "amount": 42}
    again = await h.start("o-8")  # a fresh layer, as in another process
    assert again.completed is True
    assert again.output == Receipt("o-7", 42)
    assert isinstance(again.output, Receipt)
    assert again.status == Completed(1000)


async def test_idempotent_start_of_a_paused_instance_tells_its_status(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes)
    await h.start("x")
    again = await h.start("y")
    assert (again.completed, again.output, again.status) == (False, None, Paused("sleep", 6000))
    assert h.handle.storage_snapshot()["workflow:input"] == "x"


@pytest.mark.parametrize("operation", ["start", "queue"])
async def test_an_input_that_cannot_be_serialized_stores_nothing(
    runtimes: RuntimeFactory, operation: str
) -> None:
    h = harness(runtimes)
    orchestrator = h.orchestrator()
    method = orchestrator.start if operation == "start" else orchestrator.queue
    error = failure(await method(durably.WorkflowCall("wf", object())))
    assert error.operation == operation
    assert isinstance(error.cause, SerializationError)
    assert "object" in str(error)
    assert h.handle.storage_snapshot() == {}
    assert h.handle.scheduled_time() is None


async def test_queue_then_the_alarm_runs_it(runtimes: RuntimeFactory) -> None:
    ran: list[Any] = []

    async def body(x: int) -> int:
        await durably.step("a", lambda: ran.append(x))
        return x * 2

    h = harness(runtimes, body)
    queued = (await h.orchestrator().queue(durably.WorkflowCall("wf", 21))).unwrap()
    assert queued == StartResult("o1", False, None, Queued(1000))
    assert h.handle.commits == 1  # initialize + Queue + alarm: one commit
    assert h.handle.scheduled_time() == 1000
    assert ran == []
    assert h.tracker.types() == ["workflow.queued"]
    await h.alarm_at(1500)
    assert ran == [21]
    status = await h.get_status()
    assert status.status == Completed(1500)
    assert h.handle.storage_snapshot()["workflow:output"] == 42
    assert h.handle.scheduled_time() is None
    assert (await h.start(0)).output == 42


# --- how a body ends ------------------------------------------------------------------------------


async def test_a_failed_workflow_keeps_type_message_traceback_step_and_attempt(
    runtimes: RuntimeFactory,
) -> None:
    def charge() -> None:
        raise ValueError("card declined")

    async def body(_: Any) -> None:
        await durably.step("a", lambda: "A")
        await durably.step("charge", charge)

    h = harness(runtimes, body)
    result = await h.start()
    assert result.completed is False
    status = (await h.get_status()).status  # read back from storage
    assert isinstance(status, Failed)
    assert status.failed_at == 1000
    error = status.error
    assert (error.type, error.message, error.step_name, error.attempt) == (
        "ValueError",
        "card declined",
        "charge",
        1,
    )
    assert error.traceback is not None
    assert "ValueError: card declined" in error.traceback
    assert "in charge" in error.traceback
    assert h.handle.scheduled_time() is None
    (event,) = h.tracker.of_type("workflow.failed")
    assert event.error == error
    assert event.completed_steps == ("a",)


async def test_an_error_raised_by_the_body_itself_has_no_step(runtimes: RuntimeFactory) -> None:
    async def body(_: Any) -> None:
        raise KeyError("k")

    status = (await harness(runtimes, body).start()).status
    assert isinstance(status, Failed)
    assert (status.error.type, status.error.step_name, status.error.attempt) == (
        "KeyError",
        None,
        None,
    )


async def test_a_workflow_returning_failure_fails(runtimes: RuntimeFactory) -> None:
    async def body(_: Any) -> Result[int, Exception]:
        return Failure(ValueError("no stock"))

    h = harness(runtimes, body)
    result = await h.start()
    assert (result.completed, result.output) == (False, None)
    assert isinstance(result.status, Failed)
    assert (result.status.error.type, result.status.error.message) == ("ValueError", "no stock")
    assert "workflow:output" not in h.handle.storage_snapshot()


async def test_a_workflow_returning_success_outputs_its_value(runtimes: RuntimeFactory) -> None:
    async def body(_: Any) -> Result[int, Exception]:
        return Success(7)

    h = harness(runtimes, body)
    result = await h.start()
    assert (result.completed, result.output, result.status) == (True, 7, Completed(1000))
    assert h.handle.storage_snapshot()["workflow:output"] == 7


async def test_an_output_that_cannot_be_serialized_fails_the_workflow(
    runtimes: RuntimeFactory,
) -> None:
    async def body(_: Any) -> object:
        await durably.step("a", lambda: "A")
        return object()

    h = harness(runtimes, body)
    result = await h.start()
    assert result.completed is False
    assert isinstance(result.status, Failed)
    assert result.status.error.type == "SerializationError"
    assert "workflow:output" not in h.handle.storage_snapshot()
    assert (await h.get_status()).completed_steps == ("a",)
    assert h.tracker.types()[-1] == "workflow.failed"


# --- status and alarms that do nothing ------------------------------------------------------------


async def test_get_status_and_exists(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes)
    assert await h.get_status() == WorkflowStatusResult(None, (), False)
    assert (await h.orchestrator().exists()).unwrap() is False
    await h.start()
    assert await h.get_status() == WorkflowStatusResult(Paused("sleep", 6000), ("a",), True)
    assert (await h.orchestrator().exists()).unwrap() is True


async def test_handle_alarm_with_no_instance_does_nothing(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes)
    assert (await h.orchestrator().handle_alarm()).unwrap() is None
    assert h.handle.storage_snapshot() == {}
    assert h.handle.commits == 0


async def test_handle_alarm_of_a_pending_instance_does_nothing(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes)
    sm: WorkflowStateMachine = h.layer().state_machine()
    (await sm.initialize("wf", None)).unwrap()
    before, commits = h.handle.storage_snapshot(), h.handle.commits
    assert (await h.orchestrator().handle_alarm()).unwrap() is None
    assert h.handle.storage_snapshot() == before
    assert h.handle.commits == commits
    assert (await h.get_status()).status == Pending()


async def test_handle_alarm_of_a_terminal_instance_does_nothing(runtimes: RuntimeFactory) -> None:
    ran: list[int] = []

    async def body(_: Any) -> None:
        await durably.step("a", lambda: ran.append(1))

    h = harness(runtimes, body)
    await h.start()
    before, commits = h.handle.storage_snapshot(), h.handle.commits
    await h.alarm_at(99_000)
    assert h.handle.storage_snapshot() == before
    assert h.handle.commits == commits
    assert ran == [1]


# --- concurrent workflows in one event loop -------------------------------------------------------


async def test_concurrent_workflows_never_see_each_others_context(runtimes: RuntimeFactory) -> None:
    log: list[tuple[str, str, str]] = []

    async def look(tag: str) -> str:
        for _ in range(3):
            log.append((tag, durably.context().workflow_id, durably.step_info().workflow_id))
            await asyncio.sleep(0)
        return tag

    async def body(tag: str) -> str:
        for i in range(3):
            await durably.step(f"s{i}", lambda: look(tag))
            assert durably.context().workflow_id == tag
            await asyncio.sleep(0)
        return durably.context().workflow_id

    definition = durably.make(body, name="wf")
    rt1, h1 = runtimes("c1", 1000)
    rt2, h2 = runtimes("c2", 1000, backend=h1.backend)  # one shared store
    layer1 = WorkflowLayer(runtime=rt1, workflows=[definition])
    layer2 = WorkflowLayer(runtime=rt2, workflows=[definition])
    r1, r2 = await asyncio.gather(
        layer1.orchestrator().start(durably.WorkflowCall("wf", "c1")),
        layer2.orchestrator().start(durably.WorkflowCall("wf", "c2")),
    )
    assert (r1.unwrap().output, r2.unwrap().output) == ("c1", "c2")
    assert all(tag == seen == step_seen for tag, seen, step_seen in log)
    tags = [tag for tag, _, _ in log]
    assert sorted(tags) == ["c1"] * 9 + ["c2"] * 9
    assert tags != sorted(tags)  # they did interleave
    # one store, two namespaces: each instance sees only its own keys
    assert h1.storage_snapshot()["workflow:input"] == "c1"
    assert h2.storage_snapshot()["workflow:input"] == "c2"
