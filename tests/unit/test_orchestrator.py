"""WorkflowOrchestrator (semantics.md sections 5, 6 and 10), beyond the seed-document tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
from returns.result import Failure, Result, Success

import durably
from durably.containers import WorkflowLayer
from durably.domain.errors import (
    OrchestratorError,
    SerializationError,
    StorageError,
    WorkflowNotFoundError,
)
from durably.domain.inbox import CANCEL, AppendOutcome, Outgoing
from durably.domain.serialization import dumps
from durably.domain.status import Cancelled, Completed, Failed, Paused, Pending, Queued, Running
from durably.ports import InstanceRuntime
from durably.services import WorkflowOrchestrator, WorkflowStateMachine
from durably.services.types import CancelResult, StartResult, WorkflowStatusResult
from durably.testing import FailingStorage
from tests.support.harness import Harness
from tests.support.runtimes import RuntimeFactory

pytestmark = pytest.mark.timeout(10)

Body = Callable[[Any], Awaitable[Any]]


@attrs.frozen
class Receipt:
    order_id: str
    amount: int


async def checkout(order_id: str) -> Receipt:
    return await durably.step("charge", lambda: Receipt(order_id, 42))


async def two_steps(_: Any) -> str:
    await durably.step("a", lambda: "A")
    await durably.sleep("5s")
    await durably.step("b", lambda: "B")
    return "done"


def harness(runtimes: RuntimeFactory, body: Body = two_steps, **more: Body) -> Harness:
    """Instance ``o1`` of workflow ``wf`` running ``body``, beside the workflows ``more``."""
    workflows = [durably.make(body, name="wf")]
    workflows += [durably.make(fn, name=name) for name, fn in more.items()]
    return Harness(runtimes("o1", 1000), *workflows)


def failure(result: Result[Any, OrchestratorError]) -> OrchestratorError:
    assert isinstance(result, Failure), result
    error = result.failure()
    assert isinstance(error, OrchestratorError)
    return error


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


# --- cancel ---------------------------------------------------------------------------------------


async def test_cancel_of_nothing_is_not_found(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes)
    assert (await h.orchestrator().cancel(reason="x")).unwrap() == CancelResult(
        False, "not_found", None
    )
    assert h.handle.storage_snapshot() == {}


async def test_cancel_of_a_terminal_instance_is_already_terminal(runtimes: RuntimeFactory) -> None:
    async def body(_: Any) -> int:
        return 1

    h = harness(runtimes, body)
    await h.start()
    before = h.handle.storage_snapshot()
    result = (await h.orchestrator().cancel(reason="late")).unwrap()
    assert result == CancelResult(False, "already_terminal", "Completed")
    assert h.handle.storage_snapshot() == before


async def test_cancel_of_a_queued_instance_is_immediate_and_clears_the_alarm(
    runtimes: RuntimeFactory,
) -> None:
    ran: list[int] = []

    async def body(_: Any) -> None:
        await durably.step("a", lambda: ran.append(1))

    h = harness(runtimes, body)
    (await h.orchestrator().queue(durably.WorkflowCall("wf", None))).unwrap()
    h.handle.set_time(1200)
    result = (await h.orchestrator().cancel(reason="user asked")).unwrap()
    assert result == CancelResult(True, None, "Queued")
    assert (await h.get_status()).status == Cancelled(1200, "user asked")
    assert h.handle.scheduled_time() is None
    await h.alarm_at(2000)
    assert ran == []
    (event,) = h.tracker.of_type("workflow.cancelled")
    assert event.reason == "user asked"


async def test_cancel_of_a_paused_instance_is_immediate_and_clears_the_alarm(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes)
    await h.start()
    h.handle.set_time(2000)
    result = (await h.orchestrator().cancel(reason="user asked")).unwrap()
    assert result == CancelResult(True, None, "Paused")
    status = await h.get_status()
    assert status.status == Cancelled(2000, "user asked")
    assert status.completed_steps == ("a",)
    snapshot = h.handle.storage_snapshot()
    assert snapshot["workflow:cancelReason"] == "user asked"
    assert snapshot["workflow:cancelled"] is True
    assert "workflow:pendingResumeAt" not in snapshot
    assert h.handle.scheduled_time() is None
    await h.alarm_at(6000)  # a stale alarm does nothing
    assert (await h.get_status()).status == Cancelled(2000, "user asked")


async def test_cancel_of_a_pending_instance(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes)
    sm: WorkflowStateMachine = h.layer().state_machine()
    (await sm.initialize("wf", None)).unwrap()
    result = (await h.orchestrator().cancel(reason="never mind")).unwrap()
    assert result == CancelResult(True, None, "Pending")
    assert (await h.get_status()).status == Cancelled(1000, "never mind")


# A cancel from a process that cannot take the lease goes to the instance's inbox (what
# Engine.cancel does when another worker holds it): it writes nothing of the instance's
# namespace, and makes a waiting instance due; whoever handles that alarm records Cancelled.


async def send_cancel(h: Harness, reason: str | None) -> AppendOutcome:
    """Append a cancel to the inbox, as a process without the lease does."""
    message = Outgoing(h.runtime.instance_id, CANCEL, payload=dumps({"reason": reason}))
    outcome: AppendOutcome = (await h.runtime.inbox.append(message)).unwrap()
    return outcome


async def test_a_cancel_sent_to_a_paused_instance_only_makes_it_due(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes)
    await h.start()
    before = h.handle.storage_snapshot()
    outcome = await send_cancel(h, "from afar")
    assert outcome == AppendOutcome("Paused", 1)
    assert h.handle.storage_snapshot() == before  # status and pause untouched
    assert h.handle.scheduled_time() == 1000  # due now, not at the sleep's end (6000)
    assert h.tracker.of_type("workflow.cancelled") == []
    pending = (await h.runtime.inbox.pending()).unwrap()
    assert [(m.kind, m.payload) for m in pending] == [("cancel", {"reason": "from afar"})]


@pytest.mark.parametrize("alarm_at", [3000, 6000], ids=["early", "due"])
async def test_the_next_alarm_of_a_paused_instance_records_a_sent_cancel(
    runtimes: RuntimeFactory, alarm_at: int
) -> None:
    ran: list[str] = []

    async def body(_: Any) -> str:
        await durably.step("a", lambda: ran.append("a"))
        await durably.sleep("5s")
        ran.append("after the sleep")  # no step or sleep left that would see the cancel
        return "done"

    h = harness(runtimes, body)
    await h.start()
    await send_cancel(h, "from afar")
    await h.alarm_at(alarm_at)
    status = await h.get_status()
    assert status.status == Cancelled(alarm_at, "from afar")
    assert status.completed_steps == ("a",)
    assert ran == ["a"]
    assert h.handle.scheduled_time() is None
    snapshot = h.handle.storage_snapshot()
    assert "workflow:pendingResumeAt" not in snapshot
    assert (snapshot["workflow:cancelled"], snapshot["workflow:cancelReason"]) == (
        True,
        "from afar",
    )
    assert (await h.runtime.inbox.pending()).unwrap() == []  # consumed by that commit
    (event,) = h.tracker.of_type("workflow.cancelled")
    assert (event.reason, event.completed_steps) == ("from afar", ("a",))
    assert h.tracker.of_type("workflow.resumed") == []


async def test_the_alarm_of_a_queued_instance_records_a_sent_cancel(
    runtimes: RuntimeFactory,
) -> None:
    ran: list[int] = []

    async def body(_: Any) -> None:
        await durably.step("a", lambda: ran.append(1))

    h = harness(runtimes, body)
    (await h.orchestrator().queue(durably.WorkflowCall("wf", None))).unwrap()
    assert (await send_cancel(h, "from afar")).status == "Queued"
    assert isinstance((await h.get_status()).status, Queued)
    await h.alarm_at(1000)
    assert (await h.get_status()).status == Cancelled(1000, "from afar")
    assert ran == []
    assert h.handle.scheduled_time() is None
    assert h.tracker.of_type("workflow.started") == []


async def test_a_cancel_sent_to_nothing_or_a_finished_instance_writes_nothing(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes, checkout)
    assert await send_cancel(h, None) == AppendOutcome(None)
    await h.start()
    before, commits = h.handle.storage_snapshot(), h.handle.commits
    outcome = await send_cancel(h, "late")
    assert outcome == AppendOutcome("Completed")
    assert not outcome.delivered
    assert h.handle.storage_snapshot() == before
    assert h.handle.commits == commits
    assert (await h.runtime.inbox.pending()).unwrap() == []


async def test_cancel_interrupts_a_running_execution_in_the_same_process(
    runtimes: RuntimeFactory,
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    after: list[int] = []

    async def wait() -> str:
        entered.set()
        await release.wait()
        return "never"

    async def body(_: Any) -> None:
        await durably.step("a", lambda: "A")
        await durably.step("wait", wait)
        await durably.step("b", lambda: after.append(1))

    h = harness(runtimes, body)
    layer = h.layer()  # one layer: one registry of running executions
    task = asyncio.create_task(layer.orchestrator().start(durably.WorkflowCall("wf", None)))
    await asyncio.wait_for(entered.wait(), 5)
    h.handle.set_time(1500)
    cancel = (await layer.orchestrator().cancel(reason="user asked")).unwrap()
    assert cancel == CancelResult(True, None, "Running")
    result = (await asyncio.wait_for(task, 5)).unwrap()
    assert result.completed is False
    assert result.status == Cancelled(1500, "user asked")  # fix: the user's reason, no step name
    assert after == []
    assert not release.is_set()
    snapshot = h.handle.storage_snapshot()
    assert "step:wait:result" not in snapshot
    assert snapshot["workflow:status"]["reason"] == "user asked"
    (event,) = h.tracker.of_type("workflow.cancelled")
    assert (event.reason, event.completed_steps) == ("user asked", ("a",))
    assert h.handle.scheduled_time() is None


async def test_cancel_from_another_process_stops_the_execution_at_its_next_step(
    runtimes: RuntimeFactory,
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    after: list[int] = []

    async def wait() -> str:
        entered.set()
        await release.wait()
        return "W"

    async def body(_: Any) -> None:
        await durably.step("wait", wait)
        await durably.step("b", lambda: after.append(1))

    h = harness(runtimes, body)
    task = asyncio.create_task(h.orchestrator().start(durably.WorkflowCall("wf", None)))
    await asyncio.wait_for(entered.wait(), 5)
    elsewhere = h.orchestrator()  # another layer: it cannot reach the running task
    assert (await elsewhere.cancel(reason="from afar")).unwrap() == CancelResult(
        True, None, "Running"
    )
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()  # still in its step
    assert "workflow:cancelled" not in h.handle.storage_snapshot()  # only the holder writes
    release.set()
    result = (await asyncio.wait_for(task, 5)).unwrap()
    assert result.status == Cancelled(1000, "from afar")
    assert after == []
    assert (await h.get_status()).completed_steps == ("wait",)  # the running step still committed


async def test_cancel_without_a_reason_records_none(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes)
    await h.start()
    (await h.orchestrator().cancel()).unwrap()
    assert (await h.get_status()).status == Cancelled(1000, None)


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


# --- infrastructure failures ----------------------------------------------------------------------


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
