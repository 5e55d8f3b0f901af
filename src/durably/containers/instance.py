"""The services of one instance, wired once: one state machine, one emitter, one of each.

``wire_instance`` is the graph of the original's workflow layer written as constructor
calls: every service of an instance shares the same state machine and event emitter.
The layer (``WorkflowLayer``) and the engine's root container (``Durably.instance``)
both build an instance's services with it, so the graph is written in one place; the
engine calls it once per instance it serves (a few microseconds: a benchmark,
``benchmarks/build_cost.py``).
"""

from __future__ import annotations

import attrs

from durably.ports import ChildStarter, InstanceRuntime, Tracker
from durably.services.context import ActiveExecutions
from durably.services.executor import WorkflowExecutor
from durably.services.orchestrator import WorkflowOrchestrator
from durably.services.purge import PurgeConfig, PurgeManager
from durably.services.recovery import RecoveryConfig, RecoveryManager
from durably.services.registry import WorkflowRegistry
from durably.services.state_machine import WorkflowStateMachine
from durably.services.trackers import EventEmitter

__all__ = ["InstanceServices", "wire_instance"]


@attrs.frozen
class InstanceServices:
    """The services of one instance, sharing one state machine and one emitter."""

    runtime: InstanceRuntime
    events: EventEmitter
    state_machine: WorkflowStateMachine
    recovery_manager: RecoveryManager
    executor: WorkflowExecutor
    purge_manager: PurgeManager
    orchestrator: WorkflowOrchestrator


def wire_instance(
    runtime: InstanceRuntime,
    registry: WorkflowRegistry,
    tracker: Tracker,
    recovery: RecoveryConfig,
    purge: PurgeConfig,
    executions: ActiveExecutions,
    children: ChildStarter | None = None,
) -> InstanceServices:
    """Build the services of the instance ``runtime`` serves."""
    storage, scheduler, clock = runtime.storage, runtime.scheduler, runtime.runtime
    inbox, lease = runtime.inbox, runtime.lease
    events = EventEmitter(tracker, clock)
    state_machine = WorkflowStateMachine(storage, clock, inbox)
    recovery_manager = RecoveryManager(state_machine, storage, scheduler, clock, recovery, events)
    executor = WorkflowExecutor(
        storage, scheduler, clock, state_machine, events, executions, inbox, lease, children
    )
    purge_manager = PurgeManager(storage, scheduler, clock, purge, events)
    orchestrator = WorkflowOrchestrator(
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
    return InstanceServices(
        runtime, events, state_machine, recovery_manager, executor, purge_manager, orchestrator
    )
