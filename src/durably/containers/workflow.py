"""``WorkflowLayer``: the services of one instance, built over a runtime layer."""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from dependency_injector import containers, providers

from durably.containers.instance import wire_instance
from durably.ports import InstanceRuntime
from durably.services.context import ActiveExecutions
from durably.services.purge import PurgeConfig
from durably.services.recovery import RecoveryConfig
from durably.services.registry import WorkflowRegistry
from durably.services.trackers import NoopTracker

__all__ = ["WorkflowLayer"]


class WorkflowLayer(containers.DeclarativeContainer):
    """The workflow layer: state machine, recovery, registry, ... over ``runtime``.

    Required: ``runtime`` (an ``InstanceRuntime``, or a provider of one) and
    ``workflows`` (a mapping of names to definitions, or a list of definitions).
    Building the layer checks that both are given. Each service is built once per
    layer (``instance``): the orchestrator, the recovery manager and the executor of one
    layer share one state machine and one event emitter.
    """

    runtime = providers.Dependency(instance_of=InstanceRuntime)
    workflows: providers.Dependency[Any] = providers.Dependency()

    recovery = providers.Object(RecoveryConfig())
    purge = providers.Object(PurgeConfig())
    tracker = providers.Singleton(NoopTracker)
    executions = providers.Singleton(ActiveExecutions)
    registry = providers.Singleton(WorkflowRegistry, workflows)

    instance = providers.Singleton(
        wire_instance, runtime, registry, tracker, recovery, purge, executions
    )
    storage = providers.Callable(attrgetter("storage"), runtime)
    scheduler = providers.Callable(attrgetter("scheduler"), runtime)
    clock = providers.Callable(attrgetter("runtime"), runtime)
    inbox = providers.Callable(attrgetter("inbox"), runtime)
    events = providers.Callable(attrgetter("events"), instance)
    state_machine = providers.Callable(attrgetter("state_machine"), instance)
    recovery_manager = providers.Callable(attrgetter("recovery_manager"), instance)
    executor = providers.Callable(attrgetter("executor"), instance)
    purge_manager = providers.Callable(attrgetter("purge_manager"), instance)
    orchestrator = providers.Callable(attrgetter("orchestrator"), instance)

    def __new__(cls, **overriding: Any) -> Any:
        container = super().__new__(cls, **overriding)
        container.check_dependencies()
        container.registry()  # a duplicate name fails now, not at the first alarm
        return container
