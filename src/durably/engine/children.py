"""``ChildLauncher``: the engine's side of child workflows (``ports.ChildStarter``)."""

from __future__ import annotations

from typing import Any

from returns.result import Failure

from durably.domain.records import ParentLink
from durably.engine.server import InstanceServer
from durably.services import WorkflowRegistry
from durably.services.types import WorkflowCall

__all__ = ["ChildLauncher"]


class ChildLauncher:
    """Starts the children of this engine's workflows: queued instances on its host."""

    def __init__(self, server: InstanceServer, registry: WorkflowRegistry) -> None:
        self._server = server
        self._registry = registry

    def workflow_names(self) -> list[str]:
        """The workflows registered in the engine."""
        return self._registry.list()

    def output_type(self, workflow: str) -> Any:
        """The declared output type of ``workflow`` (``Any``: unknown here, or none)."""
        if not self._registry.has(workflow):
            return Any
        return self._registry.definition(workflow).output_type

    async def start_child(
        self, child_id: str, workflow: str, input: Any, parent: ParentLink
    ) -> None:
        """Queue instance ``child_id`` as ``parent``'s child (or find it, started before)."""
        call = WorkflowCall(workflow, input, parent=parent)
        async with self._server.serve(child_id) as orchestrator:
            queued = await orchestrator.queue(call)
        if isinstance(queued, Failure):
            raise queued.failure()
