"""RecoveryManager: detecting interrupted instances, scheduling and applying their recovery."""

from __future__ import annotations

import attrs
import pytest
from dependency_injector import providers

from durably.containers import WorkflowLayer
from durably.domain import keys
from durably.domain.events import WorkflowFailed, WorkflowRecovered
from durably.domain.serialization import encode
from durably.domain.status import (
    Cancelled,
    Completed,
    Failed,
    Paused,
    Pending,
    Queued,
    Running,
    WorkflowError,
    WorkflowStatus,
)
from durably.ports import InstanceRuntime
from durably.services.recovery import (
    RecoveryCheckResult,
    RecoveryConfig,
    RecoveryExecuteResult,
    RecoveryManager,
    RecoveryStats,
)
from durably.services.state_machine import WorkflowStateMachine
from durably.services.trackers import EventEmitter, InMemoryTracker
from tests.support.runtimes import RuntimeFactory, RuntimeHandle

NOW = 1_000_000
INSTANCE = "rec-1"


@attrs.define
class Setup:
    runtime: InstanceRuntime
    handle: RuntimeHandle
    sm: WorkflowStateMachine
    manager: RecoveryManager
    tracker: InMemoryTracker


def make(
    runtimes: RuntimeFactory, config: RecoveryConfig | None = None, *, via_layer: bool = True
) -> Setup:
    runtime, handle = runtimes(instance_id=INSTANCE, initial_time=NOW)
    tracker = InMemoryTracker()
    if via_layer:
        overrides: dict[str, object] = {"tracker": providers.Object(tracker)}
        if config is not None:
            overrides["recovery"] = providers.Object(config)
        layer = WorkflowLayer(runtime=runtime, workflows={}, **overrides)
        sm: WorkflowStateMachine = layer.state_machine()
        manager: RecoveryManager = layer.recovery_manager()
    else:
        sm = WorkflowStateMachine(runtime.storage, runtime.runtime)
        manager = RecoveryManager(
            sm,
            runtime.storage,
            runtime.scheduler,
            runtime.runtime,
            config if config is not None else RecoveryConfig(),
            EventEmitter(tracker, runtime.runtime),
        )
    return Setup(runtime, handle, sm, manager, tracker)


async def start(s: Setup, status: WorkflowStatus, *, name: str = "order") -> None:
    (await s.sm.initialize(name, {"id": 1}, "exec-1")).unwrap()
    (await s.runtime.storage.put(keys.STATUS, encode(status))).unwrap()


# --- config --------------------------------------------------------------------------------------


def test_config_defaults() -> None:
    config = RecoveryConfig()
    assert config.stale_threshold_ms == 30_000
    assert config.max_recovery_attempts == 3
    assert config.recovery_delay_ms == 100


@pytest.mark.parametrize(
    "field", ["stale_threshold_ms", "max_recovery_attempts", "recovery_delay_ms"]
)
@pytest.mark.parametrize("value", [-1, -30_000, True, 1.5, "10"])
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        RecoveryConfig(**{field: value})  # type: ignore[arg-type]


def test_config_accepts_zero() -> None:
    config = RecoveryConfig(stale_threshold_ms=0, max_recovery_attempts=0, recovery_delay_ms=0)
    assert config.max_recovery_attempts == 0


# --- check_and_schedule_recovery -----------------------------------------------------------------


async def test_check_without_a_workflow_schedules_nothing(runtimes: RuntimeFactory) -> None:
    s = make(runtimes)
    result = (await s.manager.check_and_schedule_recovery()).unwrap()
    assert result.scheduled is False
    assert result.reason == "no_workflow"
    assert s.handle.scheduled_time() is None


async def test_check_stale_running_schedules_after_the_delay(runtimes: RuntimeFactory) -> None:
    s = make(runtimes, RecoveryConfig(stale_threshold_ms=10_000, recovery_delay_ms=250))
    await start(s, Running(NOW - 10_000))
    (await s.sm.increment_recovery_attempts()).unwrap()
    result = (await s.manager.check_and_schedule_recovery()).unwrap()
    assert result == RecoveryCheckResult(True, "stale_running", 10_000, "Running", 2)
    assert s.handle.scheduled_time() == NOW + 250
    # Checking only schedules: the status and the counter are untouched.
    assert (await s.sm.get_status()).unwrap() == Running(NOW - 10_000)
    assert (await s.sm.get_recovery_attempts()).unwrap() == 1


async def test_check_stale_running_first_attempt_is_one(runtimes: RuntimeFactory) -> None:
    s = make(runtimes)
    await start(s, Running(NOW - 60_000))
    result = (await s.manager.check_and_schedule_recovery()).unwrap()
    assert result.scheduled is True
    assert result.attempt == 1
    assert s.handle.scheduled_time() == NOW + 100


async def test_check_fresh_running_schedules_nothing(runtimes: RuntimeFactory) -> None:
    s = make(runtimes)
    await start(s, Running(NOW - 29_999))
    result = (await s.manager.check_and_schedule_recovery()).unwrap()
    assert result == RecoveryCheckResult(False, "running_not_stale", 29_999, "Running")
    assert s.handle.scheduled_time() is None


@pytest.mark.parametrize(
    ("resume_at", "expected_alarm"),
    [
        (NOW + 60_000, NOW + 60_000),  # in the future: never earlier than resume_at (fix)
        (NOW + 50, NOW + 100),  # within the delay: now + delay
        (NOW + 100, NOW + 100),
        (NOW - 3_600_000, NOW + 100),  # long past: now + delay
    ],
)
async def test_check_paused_arms_the_alarm_at_max_of_resume_at_and_now_plus_delay(
    runtimes: RuntimeFactory, resume_at: int, expected_alarm: int
) -> None:
    s = make(runtimes)
    await start(s, Paused("sleep", resume_at))
    result = (await s.manager.check_and_schedule_recovery()).unwrap()
    assert result.scheduled is True
    assert result.reason == "paused"
    assert result.current_status == "Paused"
    assert s.handle.scheduled_time() == expected_alarm
    assert (await s.sm.get_status()).unwrap() == Paused("sleep", resume_at)  # not resumed


async def test_check_queued_sets_the_alarm(runtimes: RuntimeFactory) -> None:
    s = make(runtimes, RecoveryConfig(recovery_delay_ms=7))
    await start(s, Queued(NOW - 5))
    result = (await s.manager.check_and_schedule_recovery()).unwrap()
    assert result.scheduled is True
    assert result.reason == "queued"
    assert s.handle.scheduled_time() == NOW + 7


@pytest.mark.parametrize(
    "status",
    [Pending(), Completed(1), Failed(1, WorkflowError("boom")), Cancelled(1, "why")],
)
async def test_check_not_started_or_terminal_schedules_nothing(
    runtimes: RuntimeFactory, status: WorkflowStatus
) -> None:
    s = make(runtimes)
    await start(s, status)
    result = (await s.manager.check_and_schedule_recovery()).unwrap()
    assert result.scheduled is False
    assert result.current_status == status.tag
    assert s.handle.scheduled_time() is None
    assert (await s.sm.get_status()).unwrap() == status


async def test_check_running_with_attempts_at_max_fails_the_workflow(
    runtimes: RuntimeFactory,
) -> None:
    s = make(runtimes)
    await start(s, Running(NOW - 60_000))
    for _ in range(3):
        (await s.sm.increment_recovery_attempts()).unwrap()
    (await s.runtime.scheduler.schedule(NOW + 5)).unwrap()
    result = (await s.manager.check_and_schedule_recovery()).unwrap()
    assert result.scheduled is False
    assert result.reason == "max_attempts_exceeded"
    assert result.current_status == "Failed"
    status = (await s.sm.get_status()).unwrap()
    assert isinstance(status, Failed)
    assert status.failed_at == NOW
    assert status.error.type == "RecoveryError"
    assert "max_attempts_exceeded" in status.error.message
    assert s.handle.scheduled_time() is None
    failed = s.tracker.of_type(WorkflowFailed)
    assert len(failed) == 1
    assert failed[0].error == status.error
    assert failed[0].workflow_name == "order"


async def test_check_paused_is_not_limited_by_attempts(runtimes: RuntimeFactory) -> None:
    s = make(runtimes)
    await start(s, Paused("retry", NOW + 1_000, "charge"))
    for _ in range(5):
        (await s.sm.increment_recovery_attempts()).unwrap()
    result = (await s.manager.check_and_schedule_recovery()).unwrap()
    assert result.scheduled is True
    assert s.handle.scheduled_time() == NOW + 1_000
    assert isinstance((await s.sm.get_status()).unwrap(), Paused)


# --- execute_recovery ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [Paused("sleep", NOW + 5), Queued(1), Pending(), Completed(1), Cancelled(1)],
)
async def test_execute_when_not_running_does_nothing(
    runtimes: RuntimeFactory, status: WorkflowStatus
) -> None:
    s = make(runtimes)
    await start(s, status)
    result = (await s.manager.execute_recovery()).unwrap()
    assert result == RecoveryExecuteResult(False, 0, "not_running", status.tag)
    assert (await s.sm.get_status()).unwrap() == status
    assert (await s.sm.get_recovery_attempts()).unwrap() == 0
    assert s.tracker.events == []


async def test_execute_without_a_workflow(runtimes: RuntimeFactory) -> None:
    s = make(runtimes)
    result = (await s.manager.execute_recovery()).unwrap()
    assert result == RecoveryExecuteResult(False, 0, "not_running", None)


@pytest.mark.parametrize("via_layer", [True, False])
async def test_execute_recovers_a_running_workflow(
    runtimes: RuntimeFactory, via_layer: bool
) -> None:
    s = make(runtimes, via_layer=via_layer)
    await start(s, Running(NOW - 60_000))
    s.handle.advance_time(10)
    before = s.handle.commits
    result = (await s.manager.execute_recovery("stale_detection")).unwrap()
    assert result == RecoveryExecuteResult(True, 1, "recovered", "Running")
    assert s.handle.commits == before + 1  # the count and the Recover commit together
    assert (await s.sm.get_status()).unwrap() == Running(NOW + 10)
    assert (await s.sm.get_recovery_attempts()).unwrap() == 1
    assert (await s.sm.get_last_recovery_at()).unwrap() == NOW + 10
    recovered = s.tracker.of_type(WorkflowRecovered)
    assert len(recovered) == 1
    event = recovered[0]
    assert event.type == "workflow.recovered"
    assert event.attempt == 1
    assert event.reason == "stale_detection"
    assert event.workflow_id == INSTANCE
    assert event.workflow_name == "order"
    assert event.execution_id == "exec-1"
    assert event.timestamp == NOW + 10


async def test_execute_default_reason_is_infrastructure_restart(runtimes: RuntimeFactory) -> None:
    s = make(runtimes)
    await start(s, Running(NOW))
    (await s.manager.execute_recovery()).unwrap()
    assert s.tracker.of_type("workflow.recovered")[0].reason == "infrastructure_restart"


async def test_a_workflow_that_crashes_on_every_replay_fails_after_max_attempts(
    runtimes: RuntimeFactory,
) -> None:
    s = make(runtimes, RecoveryConfig(max_recovery_attempts=3))
    await start(s, Running(NOW))
    (await s.runtime.scheduler.schedule(NOW + 1)).unwrap()
    for attempt in (1, 2, 3):
        s.handle.advance_time(1_000)
        result = (await s.manager.execute_recovery()).unwrap()
        assert result.success is True
        assert result.attempt == attempt
        assert (await s.sm.get_status()).unwrap() == Running(s.handle.now())
        # ...and the process dies during the replay: nothing resets the counter.
    assert [e.attempt for e in s.tracker.of_type(WorkflowRecovered)] == [1, 2, 3]
    s.handle.advance_time(1_000)
    result = (await s.manager.execute_recovery()).unwrap()
    assert result.success is False
    assert result.reason == "max_attempts_exceeded"
    assert result.attempt == 3
    assert result.new_status == "Failed"
    status = (await s.sm.get_status()).unwrap()
    assert isinstance(status, Failed)
    assert status.failed_at == s.handle.now()
    assert status.error.type == "RecoveryError"
    assert "max_attempts_exceeded" in status.error.message
    assert s.handle.scheduled_time() is None
    failed = s.tracker.of_type("workflow.failed")
    assert len(failed) == 1
    assert failed[0].error.type == "RecoveryError"
    # Failed is terminal: a further recovery does nothing.
    again = (await s.manager.execute_recovery()).unwrap()
    assert again.success is False
    assert again.reason == "not_running"
    assert len(s.tracker.of_type("workflow.failed")) == 1


async def test_failing_on_max_attempts_keeps_the_completed_steps_in_the_event(
    runtimes: RuntimeFactory,
) -> None:
    s = make(runtimes, RecoveryConfig(max_recovery_attempts=1))
    await start(s, Running(NOW))
    (await s.sm.mark_step_completed("fetch")).unwrap()
    (await s.manager.execute_recovery()).unwrap()
    result = (await s.manager.execute_recovery()).unwrap()
    assert result.success is False
    failed = s.tracker.of_type(WorkflowFailed)
    assert failed[0].completed_steps == ("fetch",)


async def test_max_zero_attempts_fails_at_the_first_recovery(runtimes: RuntimeFactory) -> None:
    s = make(runtimes, RecoveryConfig(max_recovery_attempts=0))
    await start(s, Running(NOW))
    result = (await s.manager.execute_recovery()).unwrap()
    assert result.success is False
    assert result.reason == "max_attempts_exceeded"
    assert isinstance((await s.sm.get_status()).unwrap(), Failed)


async def test_reset_recovery_attempts_starts_the_count_again(runtimes: RuntimeFactory) -> None:
    s = make(runtimes, RecoveryConfig(max_recovery_attempts=2))
    await start(s, Running(NOW))
    assert (await s.manager.execute_recovery()).unwrap().attempt == 1
    assert (await s.manager.execute_recovery()).unwrap().attempt == 2
    (await s.sm.reset_recovery_attempts()).unwrap()  # an execution segment ended
    result = (await s.manager.execute_recovery()).unwrap()
    assert result.success is True
    assert result.attempt == 1
    assert (await s.sm.get_status()).unwrap() == Running(NOW)


# --- get_stats -----------------------------------------------------------------------------------


async def test_get_stats(runtimes: RuntimeFactory) -> None:
    s = make(runtimes, RecoveryConfig(max_recovery_attempts=2))
    assert (await s.manager.get_stats()).unwrap() == RecoveryStats(0, 2, None, False)
    await start(s, Running(NOW))
    (await s.manager.execute_recovery()).unwrap()
    assert (await s.manager.get_stats()).unwrap() == RecoveryStats(1, 2, NOW, False)
    s.handle.advance_time(40)
    (await s.manager.execute_recovery()).unwrap()
    assert (await s.manager.get_stats()).unwrap() == RecoveryStats(2, 2, NOW + 40, True)
