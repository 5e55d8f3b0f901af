"""``WorkflowLayer``: the services of one instance, built over a runtime layer."""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from dependency_injector import containers, providers

from durably.ports import InstanceRuntime
from durably.services.context import ActiveExecutions
from durably.services.executor import WorkflowExecutor
from durably.services.orchestrator import WorkflowOrchestrator
from durably.services.purge import PurgeConfig, PurgeManager
from durably.services.recovery import RecoveryConfig, RecoveryManager
from durably.services.registry import WorkflowRegistry
from durably.services.state_machine import WorkflowStateMachine
from durably.services.trackers import EventEmitter, NoopTracker

__all__ = ["WorkflowLayer"]


class WorkflowLayer(containers.DeclarativeContainer):
    """The workflow layer: state machine, recovery, registry, ... over ``runtime``.

    Required: ``runtime`` (an ``InstanceRuntime``, or a provider of one) and
    ``workflows`` (a mapping of names to definitions, or a list of definitions).
    Building the layer checks that both are given.
    """

    runtime = providers.Dependency(instance_of=InstanceRuntime)
    workflows: providers.Dependency[Any] = providers.Dependency()

    recovery = providers.Object(RecoveryConfig())
    purge = providers.Object(PurgeConfig())
    tracker = providers.Singleton(NoopTracker)
    executions = providers.Singleton(ActiveExecutions)

    storage = providers.Callable(attrgetter("storage"), runtime)
    scheduler = providers.Callable(attrgetter("scheduler"), runtime)
    clock = providers.Callable(attrgetter("runtime"), runtime)
    inbox = providers.Callable(attrgetter("inbox"), runtime)
    lease = providers.Callable(attrgetter("lease"), runtime)

    registry = providers.Singleton(WorkflowRegistry, workflows)
    events = providers.Factory(EventEmitter, tracker, clock)
    state_machine = providers.Factory(WorkflowStateMachine, storage, clock)
    recovery_manager = providers.Factory(
        RecoveryManager, state_machine, storage, scheduler, clock, recovery, events
    )
    executor = providers.Factory(
        WorkflowExecutor, storage, scheduler, clock, state_machine, events, executions, inbox, lease
    )
    purge_manager = providers.Factory(PurgeManager, storage, scheduler, clock, purge, events)
    orchestrator = providers.Factory(
        WorkflowOrchestrator,
        storage,
        scheduler,
        clock,
        state_machine,
        recovery_manager,
        executor,
        registry,
        purge_manager,
        events,
        executions,
        inbox,
        lease,
    )

    def __new__(cls, **overriding: Any) -> Any:
        container = super().__new__(cls, **overriding)
        container.check_dependencies()
        container.registry()  # a duplicate name fails now, not at the first alarm
        return container
