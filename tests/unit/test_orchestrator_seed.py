"""The seed document's orchestrator test suite ("Testing Strategy"), ported unchanged in meaning.

Same workflows, same assertions; a layer is built per call over one runtime (on each backend),
as the original built an Effect layer per call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from returns.result import Failure, Result

import durably
from durably.containers import WorkflowLayer
from durably.ports import InstanceRuntime
from durably.services import WorkflowOrchestrator
from durably.types import WorkflowCall
from tests.support.runtimes import RuntimeFactory, RuntimeHandle

T = TypeVar("T")
E = TypeVar("E")


async def _simple(input: dict[str, int]) -> int:
    return input["value"] * 2


async def _stepped(input: dict[str, list[str]]) -> list[str]:
    results: list[str] = []
    for item in input["items"]:

        def upper(item: str = item) -> str:
            return item.upper()

        result = await durably.step(f"process-{item}", upper)
        results.append(result)
    return results


async def _sleeping(_input: dict[str, Any]) -> str:
    await durably.step("before", lambda: "before")
    await durably.sleep("5 seconds")
    await durably.step("after", lambda: "after")
    return "done"


async def _failing(_input: dict[str, Any]) -> None:
    raise RuntimeError("intentional failure")


TEST_WORKFLOWS = {
    "simpleWorkflow": durably.make(_simple, name="simpleWorkflow"),
    "steppedWorkflow": durably.make(_stepped, name="steppedWorkflow"),
    "sleepingWorkflow": durably.make(_sleeping, name="sleepingWorkflow"),
    "failingWorkflow": durably.make(_failing, name="failingWorkflow"),
}


@pytest.fixture
def runtime(runtimes: RuntimeFactory) -> tuple[InstanceRuntime, RuntimeHandle]:
    """The instance's runtime, over each backend in turn."""
    return runtimes(initial_time=1000, instance_id="orch-test-123")


@pytest.fixture
def handle(runtime: tuple[InstanceRuntime, RuntimeHandle]) -> RuntimeHandle:
    return runtime[1]


@pytest.fixture
def run_orchestrator(runtime: tuple[InstanceRuntime, RuntimeHandle]) -> Any:
    """Build the layers afresh and run one orchestrator operation, unwrapping its result."""

    async def run(op: Callable[[WorkflowOrchestrator], Awaitable[Result[Any, Any]]]) -> Any:
        layer = WorkflowLayer(runtime=runtime[0], workflows=TEST_WORKFLOWS)
        return (await op(layer.orchestrator())).unwrap()

    return run


@pytest.fixture
def run_either(runtime: tuple[InstanceRuntime, RuntimeHandle]) -> Any:
    """Like ``run_orchestrator`` but returns the Result itself (``Effect.either``)."""

    async def run(op: Callable[[WorkflowOrchestrator], Awaitable[Result[Any, Any]]]) -> Any:
        layer = WorkflowLayer(runtime=runtime[0], workflows=TEST_WORKFLOWS)
        return await op(layer.orchestrator())

    return run


class TestStart:
    async def test_should_start_and_complete_simple_workflow(self, run_orchestrator: Any) -> None:
        result = await run_orchestrator(
            lambda o: o.start(WorkflowCall(workflow="simpleWorkflow", input={"value": 21}))
        )
        assert result.id == "orch-test-123"
        assert result.completed is True
        assert result.output == 42

    async def test_should_start_workflow_with_steps(self, run_orchestrator: Any) -> None:
        result = await run_orchestrator(
            lambda o: o.start(
                WorkflowCall(workflow="steppedWorkflow", input={"items": ["a", "b", "c"]})
            )
        )
        assert result.completed is True
        assert result.output == ["A", "B", "C"]

    async def test_should_handle_workflow_that_pauses(self, run_orchestrator: Any) -> None:
        result = await run_orchestrator(
            lambda o: o.start(WorkflowCall(workflow="sleepingWorkflow", input={}))
        )
        assert result.completed is False

        status = await run_orchestrator(lambda o: o.get_status())
        assert status.status.tag == "Paused"
        assert "before" in status.completed_steps

    async def test_should_be_idempotent_return_existing_workflow(
        self, run_orchestrator: Any
    ) -> None:
        await run_orchestrator(
            lambda o: o.start(WorkflowCall(workflow="simpleWorkflow", input={"value": 10}))
        )
        result = await run_orchestrator(
            lambda o: o.start(WorkflowCall(workflow="simpleWorkflow", input={"value": 999}))
        )
        assert result.completed is True


class TestQueue:
    async def test_should_queue_workflow_for_async_execution(
        self, run_orchestrator: Any, handle: RuntimeHandle
    ) -> None:
        result = await run_orchestrator(
            lambda o: o.queue(WorkflowCall(workflow="simpleWorkflow", input={"value": 5}))
        )
        assert result.completed is False

        status = await run_orchestrator(lambda o: o.get_status())
        assert status.status.tag == "Queued"

        assert handle.scheduled_time() is not None


class TestHandleAlarm:
    async def test_should_start_queued_workflow(self, run_orchestrator: Any) -> None:
        await run_orchestrator(
            lambda o: o.queue(WorkflowCall(workflow="simpleWorkflow", input={"value": 7}))
        )
        await run_orchestrator(lambda o: o.handle_alarm())
        status = await run_orchestrator(lambda o: o.get_status())
        assert status.status.tag == "Completed"

    async def test_should_resume_paused_workflow(
        self, run_orchestrator: Any, handle: RuntimeHandle
    ) -> None:
        await run_orchestrator(
            lambda o: o.start(WorkflowCall(workflow="sleepingWorkflow", input={}))
        )
        handle.advance_time(6000)
        await run_orchestrator(lambda o: o.handle_alarm())

        status = await run_orchestrator(lambda o: o.get_status())
        assert status.status.tag == "Completed"
        assert "before" in status.completed_steps
        assert "after" in status.completed_steps


class TestCancel:
    async def test_should_cancel_queued_workflow(self, run_orchestrator: Any) -> None:
        await run_orchestrator(
            lambda o: o.queue(WorkflowCall(workflow="simpleWorkflow", input={"value": 1}))
        )
        result = await run_orchestrator(lambda o: o.cancel(reason="user request"))
        assert result.cancelled is True
        assert result.previous_status == "Queued"

        status = await run_orchestrator(lambda o: o.get_status())
        assert status.status.tag == "Cancelled"

    async def test_should_return_not_found_for_non_existent_workflow(
        self, run_orchestrator: Any
    ) -> None:
        result = await run_orchestrator(lambda o: o.cancel())
        assert result.cancelled is False
        assert result.reason == "not_found"

    async def test_should_return_already_terminal_for_completed_workflow(
        self, run_orchestrator: Any
    ) -> None:
        await run_orchestrator(
            lambda o: o.start(WorkflowCall(workflow="simpleWorkflow", input={"value": 1}))
        )
        result = await run_orchestrator(lambda o: o.cancel())
        assert result.cancelled is False
        assert result.reason == "already_terminal"


class TestGetStatus:
    async def test_should_return_status_for_existing_workflow(self, run_orchestrator: Any) -> None:
        await run_orchestrator(
            lambda o: o.start(WorkflowCall(workflow="simpleWorkflow", input={"value": 1}))
        )
        status = await run_orchestrator(lambda o: o.get_status())
        assert status.exists is True
        assert status.status.tag == "Completed"

    async def test_should_return_exists_false_for_non_existent_workflow(
        self, run_orchestrator: Any
    ) -> None:
        status = await run_orchestrator(lambda o: o.get_status())
        assert status.exists is False
        assert status.status is None


class TestErrorHandling:
    async def test_should_handle_workflow_failure(self, run_orchestrator: Any) -> None:
        result = await run_orchestrator(
            lambda o: o.start(WorkflowCall(workflow="failingWorkflow", input={}))
        )
        assert result.completed is False

        status = await run_orchestrator(lambda o: o.get_status())
        assert status.status.tag == "Failed"

    async def test_should_fail_for_unknown_workflow(self, run_either: Any) -> None:
        result = await run_either(
            lambda o: o.start(WorkflowCall(workflow="unknownWorkflow", input={}))
        )
        assert isinstance(result, Failure)
