"""Child workflows: ``start_child`` and ``ChildHandle.result`` (coordination.md section 2).

Starting a child is a durability point keyed by the child's workflow name, numbered
like a step's (``invoice``, ``invoice#2``); the child's id defaults to ``<parent
id>/<key>``, so a replay finds the same child. The child is created first (queued: a
worker runs it, maybe in another process), in a commit of its own that also records
its parent (``workflow:parent``); the parent's record (``child:<key>``) rides with the
parent's next commit. A crash in between is harmless: the replay creates the child
again, finds it (same id, same parent) and goes on. So a child is never started twice,
nor lost.

The commit that ends a child sends its outcome to its parent's inbox (a ``child``
message, ``WorkflowStateMachine.transition``), which makes a waiting parent due.
``result`` takes that message, records the outcome in the parent, and consumes the
message in the same commit: a replay returns the same output (or raises the same
``ChildWorkflowError``) even once the child is purged.
"""

from __future__ import annotations

from typing import Any

import attrs

from durably.domain import keys
from durably.domain.errors import (
    ChildWorkflowError,
    DurablyError,
    InfrastructureError,
    OrchestratorError,
    StepScopeError,
    WorkflowNotFoundError,
    WorkflowScopeError,
    branch_of,
)
from durably.domain.inbox import CHILD, wait_key
from durably.domain.records import ChildRecord, ParentLink
from durably.domain.serialization import decode, decode_value, encode
from durably.domain.status import WorkflowError
from durably.ports import ChildStarter
from durably.services.context import (
    BRANCH_CHILDREN,
    STEP,
    ExecutionScope,
    InfrastructureFailure,
    PauseSignal,
    durable,
    require_scope,
)
from durably.services.steps import read_or_fail

__all__ = ["ChildHandle", "run_start_child", "run_child_result"]


@attrs.frozen
class ChildHandle:
    """A started child workflow: ``await handle.result()`` waits for its end."""

    id: str
    """The child instance's id."""
    key: str = attrs.field(default="", repr=False)
    """Its key in the parent (``invoice#2``)."""

    @durable
    async def result(self) -> Any:
        """The child's output once it completes; ``ChildWorkflowError`` when it failed or
        was cancelled. The parent pauses (``Paused(reason="child")``) until it ends."""
        return await run_child_result(require_scope("ChildHandle.result"), self)


def _starter(scope: ExecutionScope, operation: str) -> ChildStarter:
    step = STEP.get()
    if step is not None:
        raise StepScopeError(operation, step.step_name)
    if scope.children is None:
        what = (
            "a workflow called directly has no engine to start children in"
            if not scope.durable
            else "child workflows need an Engine (this runtime cannot start instances)"
        )
        raise WorkflowScopeError(operation, what)
    return scope.children


async def _record(scope: ExecutionScope, record_key: str) -> ChildRecord | None:
    stored = scope.pending.get(record_key)
    if stored is None:
        stored = await read_or_fail(scope, record_key)
    return None if stored is None else decode(stored, ChildRecord, key=record_key)


async def run_start_child(
    scope: ExecutionScope,
    workflow: str,
    input: Any,
    child_id: str | None,
    queue: str | None = None,
) -> ChildHandle:
    """Start a child of ``workflow`` (once, whatever the replays); its handle."""
    starter = _starter(scope, "start_child")
    names = starter.workflow_names()
    if workflow not in names:
        raise WorkflowNotFoundError(workflow, names)
    key = scope.next_child_key(workflow)
    record_key = keys.check_key(keys.child(key), f"child {key!r}")
    position = scope.take_position()
    await scope.before_durable_point(key, position, f"{keys.CHILD_PREFIX}{key}")
    record = await _record(scope, record_key)
    started = BRANCH_CHILDREN.get()
    if record is None:
        child = child_id if child_id is not None else f"{scope.workflow_id}/{key}"
        if started is not None:
            # Known before its creation may land: a branch stopped in the middle of it
            # still cancels it (a cancel to an id that never came to be does nothing).
            started.append(child)
        try:
            link = ParentLink(scope.workflow_id, key)
            await starter.start_child(child, workflow, input, link, queue)
        except OrchestratorError as e:
            if branch_of(e) is InfrastructureError:
                raise InfrastructureFailure(e) from e
            raise e.cause if isinstance(e.cause, BaseException) else e from e
        except DurablyError as e:
            if branch_of(e) is InfrastructureError:
                raise InfrastructureFailure(e) from e
            raise
        record = ChildRecord(child, workflow, scope.runtime.now(), position=position)
        scope.pending[record_key] = encode(record, key=record_key)
    elif started is not None and record.outcome is None:
        started.append(record.child_id)
    return ChildHandle(record.child_id, key)


async def run_child_result(scope: ExecutionScope, handle: ChildHandle) -> Any:
    """The outcome of the child of ``handle``: its output, or ``ChildWorkflowError``."""
    starter = _starter(scope, "ChildHandle.result")
    record_key = keys.child(handle.key)
    await scope.before_durable_point(handle.key)
    record = await _record(scope, record_key)
    if record is None or record.child_id != handle.id:
        raise WorkflowScopeError(
            "ChildHandle.result",
            f"the handle of {handle.id!r} was not started by this workflow's start_child",
        )
    if record.outcome is None:
        message = await scope.take_message(CHILD, record.child_id)
        if message is None:
            raise PauseSignal(
                "child", None, step_name=handle.key, waits=(wait_key(CHILD, record.child_id),)
            )
        ended = message.payload if isinstance(message.payload, dict) else {}
        error = ended.get("error")
        record = attrs.evolve(
            record,
            outcome=str(ended.get("status")),
            output=ended.get("output"),
            error=None if error is None else decode(error, WorkflowError, key=record_key),
            reason=ended.get("reason"),
            ended_at=message.sent_at,
        )
        scope.pending[record_key] = encode(record, key=record_key)
    if record.outcome == "Completed":
        output_type = starter.output_type(record.workflow)
        return decode_value(record.output, output_type, key=keys.OUTPUT)
    raise ChildWorkflowError(
        record.child_id, record.workflow, record.outcome or "?", record.error, record.reason
    )
