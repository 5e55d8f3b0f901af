"""``context()`` and ``step_info()``: what the running workflow and step know about themselves."""

from __future__ import annotations

from typing import Any

from durably.domain import keys
from durably.domain.errors import WorkflowScopeError
from durably.domain.serialization import encode
from durably.services.context import STEP, ExecutionScope, StepInfo, require_scope
from durably.services.steps import read_or_fail

__all__ = ["WorkflowContext", "context", "step_info"]


class WorkflowContext:
    """The running workflow: its id, name, execution id, input, clock and metadata."""

    __slots__ = ("_scope",)

    def __init__(self, scope: ExecutionScope) -> None:
        self._scope = scope

    @property
    def workflow_id(self) -> str:
        """The instance id."""
        return self._scope.workflow_id

    @property
    def workflow_name(self) -> str:
        """The workflow's registered name."""
        return self._scope.workflow_name

    @property
    def execution_id(self) -> str | None:
        """The caller's execution (correlation) id, if given."""
        return self._scope.execution_id

    @property
    def input(self) -> Any:
        """The input as stored (JSON data)."""
        return self._scope.input

    def now(self) -> int:
        """The runtime clock's time in epoch ms (not replay-stable: use it in steps)."""
        return self._scope.runtime.now()

    async def get_meta(self, key: str) -> Any:
        """Workflow metadata ``key`` (``None`` when unset)."""
        meta_key = keys.meta(key)
        if meta_key in self._scope.pending:
            return self._scope.pending[meta_key]
        if not self._scope.durable:
            return None
        return await read_or_fail(self._scope, meta_key)

    async def set_meta(self, key: str, value: Any) -> None:
        """Set workflow metadata ``key``; stored with the next commit of the workflow."""
        meta_key = keys.meta(key)
        self._scope.pending[meta_key] = encode(value, key=meta_key)


def context() -> WorkflowContext:
    """The running workflow's context (``WorkflowScopeError`` outside a workflow)."""
    return WorkflowContext(require_scope("context"))


def step_info() -> StepInfo:
    """The running step: workflow id, step key, attempt and idempotency key."""
    info = STEP.get()
    if info is None:
        raise WorkflowScopeError("step_info")
    return info
