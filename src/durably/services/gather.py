"""``gather``: the durable points of one workflow, run at once (coordination.md section 2).

Each argument is one durable point (a step, a child, a sleep, a wait): its coroutine is
checked against the primitives that made it (``durable``), so a plain awaitable is
refused by name instead of running outside of any record. The branches start as tasks
in argument order, and each primitive takes its key in the first slice of its task,
before it awaits anything: the keys follow the arguments, never the completion order,
and a replay sees the same keys.

A branch that pauses (a sleep, a wait, a child, a retry) lets the others go on until
they end or pause too; then the workflow pauses until the earliest of the branches'
resume times, or a delivery any of them waits for, and the replay picks each branch up
where it was. A branch that fails cancels the others (their running steps are
interrupted; the children they started get a cancel, reason ``"gather failed"``, with
the next commit) and its error propagates.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any

from durably.domain.errors import StepScopeError
from durably.domain.inbox import CANCEL, Outgoing
from durably.domain.serialization import dumps
from durably.services.context import (
    BRANCH_CHILDREN,
    STEP,
    CancelSignal,
    DivergedSignal,
    ExecutionScope,
    InfrastructureFailure,
    PauseSignal,
    StopSignal,
    is_durable,
)

__all__ = ["run_gather"]


def _describe(value: object) -> str:
    code = getattr(value, "cr_code", None)
    if code is not None:
        return f"the coroutine {code.co_qualname}()"
    return f"{type(value).__name__} {value!r}"


def _close(values: tuple[object, ...]) -> None:
    """Close the coroutines that will not run (no "never awaited" warning for them)."""
    for value in values:
        if isinstance(value, Coroutine):
            value.close()


async def run_gather(scope: ExecutionScope, awaitables: tuple[Any, ...]) -> list[Any]:
    """Run ``awaitables`` (durable points) at once; their results in argument order."""
    step = STEP.get()
    if step is not None:
        _close(awaitables)
        raise StepScopeError("gather", step.step_name)
    for position, value in enumerate(awaitables):
        if not is_durable(value):
            _close(awaitables)
            raise TypeError(
                f"gather takes durable points (steps, children, sleeps, waits), but argument "
                f"{position} is {_describe(value)}: run it in a step, or as a child workflow"
            )
    if not awaitables:
        return []
    loop = asyncio.get_running_loop()
    started: list[list[str]] = [[] for _ in awaitables]
    tasks: list[asyncio.Task[Any]] = []
    for coroutine, children in zip(awaitables, started, strict=True):
        context = contextvars.copy_context()
        context.run(BRANCH_CHILDREN.set, children)
        tasks.append(loop.create_task(coroutine, context=context))
    try:
        await _settle(tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return _outcome(scope, tasks, started)


async def _settle(tasks: list[asyncio.Task[Any]]) -> None:
    """Wait until every branch has ended or paused; at the first failure, cancel the
    branches still running and wait for them."""
    waiting = set(tasks)
    while waiting:
        done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if any(_failed(task) for task in done):
            for task in waiting:
                task.cancel()
            if waiting:
                await asyncio.wait(waiting)
            return


def _failed(task: asyncio.Task[Any]) -> bool:
    return not task.cancelled() and not isinstance(task.exception(), PauseSignal | type(None))


_SEVERITY: tuple[type[BaseException], ...] = (
    StopSignal,
    InfrastructureFailure,
    DivergedSignal,
    CancelSignal,
)
"""What ends a gather first: the execution must stop (or fail on its history), then a
cancel, then an error."""


def _outcome(
    scope: ExecutionScope, tasks: list[asyncio.Task[Any]], started: list[list[str]]
) -> list[Any]:
    errors = [t.exception() for t in tasks if _failed(t)]
    if errors:
        first = next((e for kind in _SEVERITY for e in errors if isinstance(e, kind)), errors[0])
        assert first is not None
        failed = next(t for t in tasks if not t.cancelled() and t.exception() is first)
        reason = dumps({"reason": "gather failed"})
        for task, children in zip(tasks, started, strict=True):
            if task is failed or (not task.cancelled() and task.exception() is None):
                continue  # the failed branch's child ended; a finished branch's child too
            for child_id in children:
                scope.sends.append(Outgoing(child_id, CANCEL, payload=reason))
        raise first
    pauses = [e for t in tasks if isinstance(e := t.exception(), PauseSignal)]
    if pauses:
        raise _combined(pauses)
    return [task.result() for task in tasks]


def _combined(pauses: list[PauseSignal]) -> PauseSignal:
    """One pause for the paused branches: the earliest resume time (a branch without one
    waits for a delivery only), every delivery any branch waits for, every record."""
    times = [p.resume_at for p in pauses if p.resume_at is not None]
    first = pauses[0]
    writes: dict[str, Any] = {}
    events: list[Any] = []
    waits: list[str] = []
    for pause in pauses:
        writes.update(pause.writes)
        events.extend(pause.events)
        waits.extend(w for w in pause.waits if w not in waits)
    return PauseSignal(
        first.reason,
        min(times) if times else None,
        step_name=first.step_name,
        attempt=first.attempt,
        writes=writes,
        events=events,
        waits=tuple(waits),
    )
