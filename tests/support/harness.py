"""``Harness``: one workflow instance, driven through its services as a host drives it."""

from __future__ import annotations

from typing import Any

from dependency_injector import providers

from durably import WorkflowDefinition
from durably.containers import WorkflowLayer
from durably.domain.records import JsonValue
from durably.ports import InstanceRuntime
from durably.services import PurgeConfig, RecoveryConfig, RecoveryManager, WorkflowOrchestrator
from durably.status import Paused, WorkflowStatus
from durably.trackers import InMemoryTracker
from durably.types import StartResult, WorkflowCall, WorkflowStatusResult
from tests.support.runtimes import RuntimeHandle

__all__ = ["Harness"]


class Harness:
    """One instance over a runtime; a fresh ``WorkflowLayer`` per operation, as a host does.

    ``runtime`` is a runtime and its handle, as the ``runtimes`` fixture (any backend) or
    ``create_in_memory_runtime`` give them. The workflows, the tracker (an
    ``InMemoryTracker`` unless given) and the purge and recovery settings (the layer's
    defaults unless given) are attributes, so a test may change them between operations.
    """

    def __init__(
        self,
        runtime: tuple[InstanceRuntime, RuntimeHandle],
        *workflows: WorkflowDefinition[Any, Any],
        tracker: Any = None,
        purge: PurgeConfig | None = None,
        recovery: RecoveryConfig | None = None,
    ) -> None:
        self.runtime, self.handle = runtime
        self.workflows = list(workflows)
        self.tracker: Any = tracker if tracker is not None else InMemoryTracker()
        self.purge = purge
        self.recovery = recovery

    # -- the services --------------------------------------------------------------------

    def layer(self, runtime: InstanceRuntime | None = None, *, tracker: Any = None) -> Any:
        """A new workflow layer over the instance's runtime (or ``runtime``)."""
        options: dict[str, Any] = {
            "tracker": providers.Object(tracker if tracker is not None else self.tracker)
        }
        if self.purge is not None:
            options["purge"] = providers.Object(self.purge)
        if self.recovery is not None:
            options["recovery"] = providers.Object(self.recovery)
        return WorkflowLayer(
            runtime=runtime if runtime is not None else self.runtime,
            workflows=self.workflows,
            **options,
        )

    def orchestrator(
        self, runtime: InstanceRuntime | None = None, *, tracker: Any = None
    ) -> WorkflowOrchestrator:
        """The orchestrator of a new layer (see ``layer``)."""
        orchestrator: WorkflowOrchestrator = self.layer(runtime, tracker=tracker).orchestrator()
        return orchestrator

    def recovery_manager(self) -> RecoveryManager:
        """The recovery manager of a new layer."""
        manager: RecoveryManager = self.layer().recovery_manager()
        return manager

    # -- operations ----------------------------------------------------------------------

    async def start(
        self, input: Any = None, workflow: str | None = None, *, execution_id: str | None = None
    ) -> StartResult:
        """Start ``workflow`` (the first one by default) with ``input``; unwrapped."""
        name = workflow if workflow is not None else self.workflows[0].name
        call = WorkflowCall(name, input, execution_id=execution_id)
        result: StartResult = (await self.orchestrator().start(call)).unwrap()
        return result

    async def get_status(self) -> WorkflowStatusResult:
        """The orchestrator's ``get_status``, unwrapped."""
        result: WorkflowStatusResult = (await self.orchestrator().get_status()).unwrap()
        return result

    async def status(self) -> WorkflowStatus | None:
        """The instance's status (``None`` before it exists)."""
        return (await self.get_status()).status

    async def completed_steps(self) -> tuple[str, ...]:
        """The names of the completed steps, in the order they completed."""
        return (await self.get_status()).completed_steps

    async def output(self) -> Any:
        """The stored output, as ``start`` on the existing instance returns it."""
        again = await self.start()
        assert again.completed
        return again.output

    # -- alarms and time -----------------------------------------------------------------

    async def alarm(self, *, tracker: Any = None) -> None:
        """Run the alarm handler now (the alarm slot is left as it is)."""
        (await self.orchestrator(tracker=tracker).handle_alarm()).unwrap()

    async def alarm_at(self, at: int) -> None:
        """Move the clock to ``at`` and run the alarm handler (the slot is left as it is)."""
        self.handle.set_time(at)
        await self.alarm()

    async def fire_alarm(self, at: int) -> None:
        """Fire the alarm at ``at`` as the host does: clear the slot, then run the handler."""
        self.handle.set_time(at)
        self.handle.clear_alarm()
        await self.alarm()

    async def resume(self, *, tracker: Any = None) -> WorkflowStatus | None:
        """Move the clock to the pause's resume time, run the alarm; the status after it."""
        status = await self.status()
        assert isinstance(status, Paused), status
        assert status.resume_at is not None
        self.handle.set_time(status.resume_at)
        await self.alarm(tracker=tracker)
        return await self.status()

    async def resume_until_done(self) -> WorkflowStatus | None:
        """``resume`` while the instance is paused until a time; its status after that."""
        while isinstance(status := await self.status(), Paused) and status.resume_at is not None:
            self.handle.set_time(status.resume_at)
            await self.alarm()
        return status

    async def run_to_end(self) -> list[int]:
        """Fire each alarm at its time (``fire_alarm``) until none is set; the times fired."""
        fired: list[int] = []
        while (at := self.handle.scheduled_time()) is not None:
            fired.append(at)
            await self.fire_alarm(at)
        return fired

    # -- what is stored ------------------------------------------------------------------

    def snapshot(self) -> dict[str, JsonValue]:
        """Every stored key and value of the instance."""
        return self.handle.storage_snapshot()
