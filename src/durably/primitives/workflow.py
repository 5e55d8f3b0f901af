"""Declaring workflows: ``@workflow``, ``workflow(name=...)`` and ``make``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast, overload

from durably.services.context import SCOPE, ExecutionScope
from durably.services.definition import WorkflowDefinition, set_direct_runner
from durably.services.state_machine import WorkflowStateMachine
from durably.services.trackers import EventEmitter, NoopTracker

__all__ = ["workflow", "make", "WorkflowDefinition"]

I = TypeVar("I")  # noqa: E741 - the conventional name of an input type variable
O = TypeVar("O")  # noqa: E741 - the conventional name of an output type variable


@overload
def make(
    fn: Callable[[], Awaitable[O]], *, name: str | None = None
) -> WorkflowDefinition[None, O]: ...


@overload
def make(
    fn: Callable[[I], Awaitable[O]], *, name: str | None = None
) -> WorkflowDefinition[I, O]: ...


def make(fn: Callable[..., Awaitable[Any]], *, name: str | None = None) -> Any:
    """A workflow definition of ``fn`` (named ``name``, or ``fn.__name__``)."""
    return WorkflowDefinition(name if name is not None else fn.__name__, fn)


class _Decorator(Protocol):
    @overload
    def __call__(self, fn: Callable[[], Awaitable[O]], /) -> WorkflowDefinition[None, O]: ...

    @overload
    def __call__(self, fn: Callable[[I], Awaitable[O]], /) -> WorkflowDefinition[I, O]: ...


@overload
def workflow(fn: Callable[[], Awaitable[O]], /) -> WorkflowDefinition[None, O]: ...


@overload
def workflow(fn: Callable[[I], Awaitable[O]], /) -> WorkflowDefinition[I, O]: ...


@overload
def workflow(*, name: str | None = None) -> _Decorator: ...


def workflow(fn: Callable[..., Awaitable[Any]] | None = None, /, *, name: str | None = None) -> Any:
    """Declare an ``async def`` as a workflow: ``@workflow`` or ``@workflow(name="...")``."""
    if fn is not None:
        return make(fn, name=name)

    def decorate(body: Callable[..., Awaitable[Any]]) -> Any:
        return make(body, name=name)

    return decorate


class _DirectRuntime:
    """The identity and clock of a body run directly, with no durability."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id

    def now(self) -> int:
        return time.time_ns() // 1_000_000


async def _run_direct(definition: WorkflowDefinition[Any, Any], input: Any) -> Any:
    runtime = _DirectRuntime(f"direct-{uuid.uuid4()}")
    nothing = cast(Any, None)  # a direct run never touches storage or the scheduler
    scope = ExecutionScope(
        workflow_id=runtime.instance_id,
        workflow_name=definition.name,
        execution_id=None,
        input=input,
        mode="direct",
        keys=nothing,
        runtime=runtime,
        state_machine=cast(WorkflowStateMachine, nothing),
        events=EventEmitter(NoopTracker(), runtime).bound(definition.name),
        durable=False,
    )
    token = SCOPE.set(scope)
    try:
        return await definition.call(input)
    finally:
        SCOPE.reset(token)


set_direct_runner(_run_direct)
