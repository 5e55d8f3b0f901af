"""``child``, ``start_child`` and ``gather``: fan out to child workflows and parallel points."""

from __future__ import annotations

from typing import Any, TypeVar, overload

from durably.services.children import ChildHandle, run_start_child
from durably.services.context import durable, require_scope
from durably.services.definition import WorkflowDefinition
from durably.services.gather import run_gather

__all__ = ["child", "start_child", "gather", "ChildHandle"]

Out = TypeVar("Out")


def _name_of(workflow: object) -> str:
    if isinstance(workflow, WorkflowDefinition):
        return workflow.name
    if isinstance(workflow, str) and workflow:
        return workflow
    raise TypeError(f"a child workflow is a workflow or its registered name, got {workflow!r}")


def _check_id(id: object) -> str | None:
    if id is None or (isinstance(id, str) and id.strip()):
        return id
    raise ValueError(f"a child's id must be a non-empty string or None, got {id!r}")


@durable
async def start_child(
    workflow: WorkflowDefinition[Any, Any] | str,
    input: Any = None,
    *,
    id: str | None = None,
    queue: str | None = None,
) -> ChildHandle:
    """Start a child workflow (a durable point) and return its ``ChildHandle``.

    ``workflow`` is a workflow registered in the engine that runs this one, or its name
    (else ``WorkflowNotFoundError``). The child is keyed by the workflow's name,
    numbered like a step (``invoice``, ``invoice#2``); its id is ``<this id>/<key>``
    unless ``id`` is given. It runs on a worker (maybe in another process), on
    ``queue`` if given; ``await handle.result()`` waits for its end.
    """
    name = _name_of(workflow)
    child_id = _check_id(id)
    scope = require_scope("start_child")
    return await run_start_child(scope, name, input, child_id, queue)


@overload
async def child(
    workflow: WorkflowDefinition[Any, Out],
    input: Any = None,
    *,
    id: str | None = None,
    queue: str | None = None,
) -> Out: ...


@overload
async def child(
    workflow: str, input: Any = None, *, id: str | None = None, queue: str | None = None
) -> Any: ...


@durable
async def child(
    workflow: WorkflowDefinition[Any, Any] | str,
    input: Any = None,
    *,
    id: str | None = None,
    queue: str | None = None,
) -> Any:
    """Start a child workflow and wait for its end: its output, or ``ChildWorkflowError``
    (catchable) when it failed or was cancelled. The parent pauses while it waits
    (``Paused(reason="child")``); the child's end makes it due."""
    name = _name_of(workflow)
    child_id = _check_id(id)
    scope = require_scope("child")
    handle = await run_start_child(scope, name, input, child_id, queue)
    return await handle.result()


async def gather(*awaitables: Any) -> list[Any]:
    """Run steps, children, sleeps and waits of this workflow at once; their results in
    argument order. Keys are given in argument order (a replay sees the same ones);
    when one fails, the others are cancelled and its error propagates."""
    scope = require_scope("gather")
    return await run_gather(scope, awaitables)
