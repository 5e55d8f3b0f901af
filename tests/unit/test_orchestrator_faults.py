"""WorkflowOrchestrator over a failing storage (semantics.md sections 6 and 10).

Every operation fails as an ``OrchestratorError`` that names it and keeps the stored
state; a step whose commit failed is replayed by recovery; a value the storage refuses
for good fails the step at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
from returns.result import Result

import durably
from durably.domain.errors import StorageError
from durably.domain.status import Completed, Failed, Paused, Running
from durably.ports import InstanceRuntime
from durably.services import WorkflowOrchestrator
from durably.testing import FailingStorage
from tests.support.harness import Harness
from tests.support.orchestrator import failure, harness
from tests.support.runtimes import RuntimeFactory

pytestmark = pytest.mark.timeout(10)


def failing_runtime(h: Harness) -> tuple[InstanceRuntime, FailingStorage]:
    storage = FailingStorage(h.runtime.storage)
    return attrs.evolve(h.runtime, storage=storage), storage


async def test_every_operation_fails_as_an_orchestrator_error_and_keeps_the_state(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes)
    runtime, storage = failing_runtime(h)
    (await h.orchestrator(runtime).start(durably.WorkflowCall("wf", "x"))).unwrap()
    before = h.handle.storage_snapshot()
    storage.fail_on = {"get"}
    h.handle.set_time(6000)
    call = durably.WorkflowCall("wf", "x")
    operations: dict[str, Callable[[WorkflowOrchestrator], Awaitable[Result[Any, Any]]]] = {
        "start": lambda o: o.start(call),
        "queue": lambda o: o.queue(call),
        "alarm": lambda o: o.handle_alarm(),
        "cancel": lambda o: o.cancel(reason="r"),
        "status": lambda o: o.get_status(),
        "exists": lambda o: o.exists(),
    }
    for name, operation in operations.items():
        error = failure(await operation(h.orchestrator(runtime)))
        assert error.operation == name
        assert isinstance(error.cause, StorageError)
        assert str(error).startswith(f"{name} failed: StorageError")
    assert h.handle.storage_snapshot() == before
    assert h.handle.scheduled_time() == 6000
    storage.fail_on = set()
    (await h.orchestrator(runtime).handle_alarm()).unwrap()
    assert (await h.get_status()).status == Completed(6000)


async def test_a_failed_commit_on_resume_leaves_the_instance_paused(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes)
    runtime, storage = failing_runtime(h)
    await h.start()
    before = h.handle.storage_snapshot()
    storage.fail_on = {"commit"}
    h.handle.set_time(6000)
    error = failure(await h.orchestrator(runtime).handle_alarm())
    assert isinstance(error.cause, StorageError)
    assert h.handle.storage_snapshot() == before
    assert (await h.get_status()).status == Paused("sleep", 6000)


async def test_a_failed_step_commit_is_an_execute_error_and_leaves_it_running(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes)
    runtime, storage = failing_runtime(h)
    calls: list[str] = []

    def a() -> str:
        calls.append("a")
        if len(calls) == 1:
            storage.fail_on = {"commit"}  # the database goes away while the step runs
        return "A"

    async def body(_: Any) -> str:
        await durably.step("a", a)
        return "done"

    h.workflows[0] = durably.make(body, name="wf")
    error = failure(await h.orchestrator(runtime).start(durably.WorkflowCall("wf", None)))
    assert error.operation == "execute"
    assert isinstance(error.cause, StorageError)
    assert "execute failed" in str(error)
    storage.fail_on = set()
    status = await h.get_status()
    assert status.status == Running(1000)  # the last committed state
    assert status.completed_steps == ()
    assert "step:a:result" not in h.handle.storage_snapshot()
    h.handle.set_time(2000)
    (await h.orchestrator(runtime).handle_alarm()).unwrap()  # recovery replays it
    assert calls == ["a", "a"]
    assert (await h.get_status()).status == Completed(2000)


async def test_a_commit_the_storage_refuses_for_good_fails_the_step_at_once(
    runtimes: RuntimeFactory,
) -> None:
    """A refusal a retry cannot change (the database refuses the value itself): the step
    fails now, naming the cause, instead of the instance running it again and again."""

    class RefusingOnce(FailingStorage):
        async def put_batch(self, entries: Any) -> Any:
            result = await super().put_batch(entries)
            self.fail_on = set()  # only the step's commit is refused
            return result

    h = harness(runtimes)
    storage = RefusingOnce(h.runtime.storage, permanent=True)
    runtime = attrs.evolve(h.runtime, storage=storage)
    calls: list[str] = []

    def a() -> str:
        calls.append("a")
        storage.fail_on = {"put_batch"}  # the step's commit: one batch
        return "A"

    async def body(_: Any) -> str:
        await durably.step("a", a)
        return "done"

    h.workflows[0] = durably.make(body, name="wf")
    result = (await h.orchestrator(runtime).start(durably.WorkflowCall("wf", None))).unwrap()
    assert isinstance(result.status, Failed)
    error = result.status.error
    assert (error.type, error.step_name) == ("SerializationError", "a")
    assert "refused" in error.message
    assert "injected fault" in error.message
    assert calls == ["a"]
