"""``ChildLauncher``: the engine's side of child workflows (``ports.ChildStarter``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from returns.result import Failure

from durably.domain.queues import DEFAULT_QUEUE, Placement, Queue
from durably.domain.records import ParentLink
from durably.engine.server import InstanceServer
from durably.services import WorkflowRegistry
from durably.services.types import WorkflowCall

__all__ = ["ChildLauncher"]


class ChildLauncher:
    """Starts the children of this engine's workflows: queued instances on its host."""

    def __init__(
        self, server: InstanceServer, registry: WorkflowRegistry, queues: Mapping[str, Queue]
    ) -> None:
        self._server = server
        self._registry = registry
        self._queues = queues

    def workflow_names(self) -> list[str]:
        """The workflows registered in the engine."""
        return self._registry.list()

    def output_type(self, workflow: str) -> Any:
        """The declared output type of ``workflow`` (``Any``: unknown here, or none)."""
        if not self._registry.has(workflow):
            return Any
        return self._registry.definition(workflow).output_type

    async def start_child(
        self,
        child_id: str,
        workflow: str,
        input: Any,
        parent: ParentLink,
        queue: str | None = None,
    ) -> None:
        """Queue instance ``child_id`` as ``parent``'s child (or find it, started before)."""
        placement = None
        if queue is not None and queue != DEFAULT_QUEUE:
            if queue not in self._queues:
                known = ", ".join(self._queues)
                raise ValueError(f"unknown queue {queue!r}; this engine's queues: {known}")
            placement = Placement(queue)
        call = WorkflowCall(workflow, input, parent=parent, placement=placement)
        async with self._server.serve(child_id) as orchestrator:
            queued = await orchestrator.queue(call)
        if isinstance(queued, Failure):
            raise queued.failure()
