"""WorkflowLayer and MemoryRuntimeLayer: the composition root."""

from __future__ import annotations

from typing import Any

import pytest
from dependency_injector import errors, providers

from durably.containers import MemoryRuntimeLayer, WorkflowLayer
from durably.domain.status import Pending, Running
from durably.domain.transitions import Start
from durably.ports import InstanceRuntime
from durably.services.definition import WorkflowDefinition
from durably.services.recovery import RecoveryConfig, RecoveryManager
from durably.services.registry import WorkflowRegistry
from durably.services.state_machine import WorkflowStateMachine
from durably.services.trackers import EventEmitter, InMemoryTracker, NoopTracker
from durably.testing import create_in_memory_runtime


async def simple(value: dict[str, int]) -> int:
    return value["value"] * 2


async def other(value: int) -> int:
    return value


SIMPLE: WorkflowDefinition[Any, Any] = WorkflowDefinition("simple", simple)


def test_layer_builds_with_runtime_and_workflows() -> None:
    runtime, _ = create_in_memory_runtime(instance_id="layer-1", initial_time=1_000)
    layer = WorkflowLayer(runtime=runtime, workflows={"simple": SIMPLE})
    registry = layer.registry()
    assert isinstance(registry, WorkflowRegistry)
    assert registry.get("simple").unwrap() is SIMPLE
    assert layer.registry() is registry  # one registry per layer


def test_layer_accepts_a_list_of_workflows() -> None:
    runtime, _ = create_in_memory_runtime(instance_id="layer-list")
    layer = WorkflowLayer(runtime=runtime, workflows=[SIMPLE])
    assert layer.registry().list() == ["simple"]


def test_missing_workflows_fails_at_build_time_naming_it() -> None:
    runtime, _ = create_in_memory_runtime(instance_id="layer-2")
    with pytest.raises(errors.Error, match="workflows"):
        WorkflowLayer(runtime=runtime)


def test_missing_runtime_fails_at_build_time_naming_it() -> None:
    with pytest.raises(errors.Error, match="runtime"):
        WorkflowLayer(workflows={"simple": SIMPLE})


def test_a_runtime_of_the_wrong_type_is_refused() -> None:
    layer = WorkflowLayer(runtime=object(), workflows={})
    with pytest.raises(errors.Error):
        layer.state_machine()


def test_duplicate_names_fail_when_the_layer_is_built() -> None:
    runtime, _ = create_in_memory_runtime(instance_id="layer-dup")
    duplicate = WorkflowDefinition("simple", other)
    with pytest.raises(ValueError, match="'simple'"):
        WorkflowLayer(runtime=runtime, workflows=[SIMPLE, duplicate])


def test_a_non_definition_fails_when_the_layer_is_built() -> None:
    runtime, _ = create_in_memory_runtime(instance_id="layer-bad")
    with pytest.raises(TypeError):
        WorkflowLayer(runtime=runtime, workflows=[simple])


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("state_machine", WorkflowStateMachine),
        ("recovery_manager", RecoveryManager),
        ("registry", WorkflowRegistry),
        ("tracker", NoopTracker),
        ("recovery", RecoveryConfig),
    ],
)
def test_service_providers_exist(name: str, cls: type) -> None:
    runtime, _ = create_in_memory_runtime(instance_id="layer-p")
    layer = WorkflowLayer(runtime=runtime, workflows={})
    provider = getattr(layer, name)
    assert isinstance(provider, providers.Provider)
    assert isinstance(provider(), cls)


def test_storage_and_scheduler_are_the_runtimes() -> None:
    runtime, _ = create_in_memory_runtime(instance_id="layer-s")
    layer = WorkflowLayer(runtime=runtime, workflows={})
    assert isinstance(layer.storage, providers.Provider)
    assert isinstance(layer.scheduler, providers.Provider)
    assert layer.storage() is runtime.storage
    assert layer.scheduler() is runtime.scheduler


def test_default_recovery_config_and_tracker() -> None:
    runtime, _ = create_in_memory_runtime(instance_id="layer-d")
    layer = WorkflowLayer(runtime=runtime, workflows={})
    assert layer.recovery_manager().config == RecoveryConfig()
    emitter = layer.events()
    assert isinstance(emitter, EventEmitter)
    assert emitter.enabled is False


def test_overriding_recovery_changes_the_manager_built() -> None:
    runtime, _ = create_in_memory_runtime(instance_id="layer-r")
    config = RecoveryConfig(stale_threshold_ms=5, max_recovery_attempts=9, recovery_delay_ms=1)
    layer = WorkflowLayer(runtime=runtime, workflows={}, recovery=providers.Object(config))
    assert layer.recovery_manager().config is config


def test_overriding_an_existing_layer_changes_the_manager_built() -> None:
    runtime, _ = create_in_memory_runtime(instance_id="layer-r2")
    layer = WorkflowLayer(runtime=runtime, workflows={})
    config = RecoveryConfig(max_recovery_attempts=1)
    layer.recovery.override(providers.Object(config))
    assert layer.recovery_manager().config is config


async def test_overriding_the_tracker_routes_events_to_it() -> None:
    runtime, handle = create_in_memory_runtime(instance_id="layer-t", initial_time=500)
    tracker = InMemoryTracker()
    layer = WorkflowLayer(runtime=runtime, workflows={}, tracker=providers.Object(tracker))
    assert layer.tracker() is tracker
    assert layer.events().tracker is tracker
    assert layer.events().enabled is True
    sm = layer.state_machine()
    (await sm.initialize("simple", None)).unwrap()
    (await sm.apply_transition(Start())).unwrap()
    handle.advance_time(60_000)
    (await layer.recovery_manager().execute_recovery()).unwrap()
    assert tracker.types() == ["workflow.recovered"]
    assert tracker.events[0].workflow_id == "layer-t"


async def test_services_use_the_runtime_clock() -> None:
    runtime, handle = create_in_memory_runtime(instance_id="layer-c", initial_time=4_242)
    layer = WorkflowLayer(runtime=runtime, workflows={})
    assert (await layer.state_machine().apply_transition(Start())).unwrap() == Running(4_242)
    handle.advance_time(8)
    assert layer.clock().now() == 4_250


async def test_a_layer_built_again_over_the_same_runtime_sees_the_same_state() -> None:
    runtime, _ = create_in_memory_runtime(instance_id="layer-again", initial_time=10)
    first = WorkflowLayer(runtime=runtime, workflows={"simple": SIMPLE})
    sm1 = first.state_machine()
    (await sm1.initialize("simple", {"value": 21}, "exec-1")).unwrap()
    (await sm1.mark_step_completed("a")).unwrap()
    second = WorkflowLayer(runtime=runtime, workflows={"simple": SIMPLE})
    state = (await second.state_machine().get_state()).unwrap()
    assert state is not None
    assert state.status == Pending()
    assert state.workflow_name == "simple"
    assert state.input == {"value": 21}
    assert state.execution_id == "exec-1"
    assert state.completed_steps == ("a",)


def test_each_layer_has_its_own_tracker_singleton() -> None:
    runtime, _ = create_in_memory_runtime(instance_id="layer-own")
    first = WorkflowLayer(runtime=runtime, workflows={})
    second = WorkflowLayer(runtime=runtime, workflows={})
    assert first.tracker() is first.tracker()
    assert first.tracker() is not second.tracker()


async def test_memory_runtime_layer_instance_is_usable_by_a_workflow_layer() -> None:
    runtime_layer = MemoryRuntimeLayer(instance_id="x")
    instance = runtime_layer.instance()
    assert isinstance(instance, InstanceRuntime)
    assert instance.instance_id == "x"
    assert abs(instance.now() - runtime_layer.clock().now()) < 60_000
    layer = WorkflowLayer(runtime=instance, workflows={"simple": SIMPLE})
    (await layer.state_machine().initialize("simple", 1, "e")).unwrap()
    (await layer.state_machine().apply_transition(Start())).unwrap()
    # Another instance() of the same runtime layer shares its backend.
    again = WorkflowLayer(runtime=runtime_layer.instance(), workflows={"simple": SIMPLE})
    status = (await again.state_machine().get_status()).unwrap()
    assert isinstance(status, Running)
    assert (await again.state_machine().get_state()).unwrap() is not None


async def test_memory_runtime_layers_do_not_share_instances() -> None:
    runtime_layer = MemoryRuntimeLayer(instance_id="x")
    other_layer = MemoryRuntimeLayer(instance_id="y")
    wl = WorkflowLayer(runtime=runtime_layer.instance(), workflows={})
    (await wl.state_machine().initialize("simple", 1)).unwrap()
    other = WorkflowLayer(runtime=other_layer.instance(), workflows={})
    assert (await other.state_machine().get_status()).unwrap() is None


def test_memory_runtime_layer_requires_an_instance_id() -> None:
    with pytest.raises(errors.Error):
        MemoryRuntimeLayer().instance()


def test_the_root_builds_one_instances_services_in_one_call_with_the_runtime_given() -> None:
    """The instance served is an argument, not ambient state; every service of its graph
    gets the ports of that runtime, and shares one state machine and one emitter."""
    from durably.containers import InstanceServices, build_root

    root = build_root([SIMPLE], {"backend": {"url": "memory://"}, "tracker": {"kind": "noop"}})
    for iid in ("root-a", "root-b"):
        runtime, _ = create_in_memory_runtime(instance_id=iid)
        services = root.instance(runtime=runtime)
        assert isinstance(services, InstanceServices)
        orchestrator = services.orchestrator
        assert orchestrator.instance_id == iid
        assert orchestrator._keys._storage is runtime.storage
        assert orchestrator._keys._scheduler is runtime.scheduler
        assert orchestrator._runtime is runtime.runtime
        sm = services.state_machine
        assert orchestrator._sm is sm
        assert orchestrator._executor._sm is sm
        assert orchestrator._recovery._sm is sm
        assert sm._keys._storage is runtime.storage
        events = services.events
        assert orchestrator._events is events
        assert orchestrator._executor._events is events
        assert orchestrator._purge._events is events
        assert orchestrator._registry is root.registry()  # one registry for every instance


def test_a_layer_builds_each_service_once() -> None:
    runtime, _ = create_in_memory_runtime(instance_id="once")
    layer = WorkflowLayer(runtime=runtime, workflows=[SIMPLE])
    orchestrator = layer.orchestrator()
    assert layer.orchestrator() is orchestrator
    assert orchestrator._sm is layer.state_machine()
    assert orchestrator._executor._sm is layer.state_machine()
    assert orchestrator._events is layer.events()
