"""Recovery: taking over an instance whose execution was interrupted, with a bounded retry count."""

from __future__ import annotations

import attrs

from durably.domain.errors import RecoveryError
from durably.domain.events import WorkflowFailed, WorkflowRecovered
from durably.domain.results import operation
from durably.domain.status import Paused, Queued, WorkflowError, WorkflowStatus
from durably.domain.transitions import Fail, Recover, RecoverReason
from durably.ports import RuntimeAdapter, SchedulerAdapter, StorageAdapter
from durably.services.namespace import Namespace
from durably.services.state_machine import WorkflowStateMachine
from durably.services.trackers import BoundEmitter, EventEmitter

__all__ = [
    "RecoveryConfig",
    "RecoveryCheckResult",
    "RecoveryExecuteResult",
    "RecoveryStats",
    "RecoveryManager",
]


def _non_negative(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be a non-negative int, got {value!r}")


@attrs.frozen
class RecoveryConfig:
    """How recovery decides and how often it may try."""

    stale_threshold_ms: int = attrs.field(default=30_000, validator=_non_negative)
    max_recovery_attempts: int = attrs.field(default=3, validator=_non_negative)
    recovery_delay_ms: int = attrs.field(default=100, validator=_non_negative)


@attrs.frozen
class RecoveryCheckResult:
    """What ``check_and_schedule_recovery`` did."""

    scheduled: bool
    reason: str
    stale_duration_ms: int | None = None
    current_status: str | None = None
    attempt: int | None = None


@attrs.frozen
class RecoveryExecuteResult:
    """What ``execute_recovery`` did."""

    success: bool
    attempt: int
    reason: str
    new_status: str | None = None


@attrs.frozen
class RecoveryStats:
    """The recovery counters of an instance."""

    attempts: int
    max_attempts: int
    last_attempt_at: int | None
    max_exceeded: bool


class RecoveryManager:
    """Detects interrupted instances, schedules their recovery and applies ``Recover``.

    The attempt counter counts recoveries without progress: every durability point of
    the instance resets it (a committed step, a pause, the end), so an instance that
    kills its process on every replay before committing anything fails after
    ``max_recovery_attempts``, while one that progresses never does. Its methods raise;
    the original's operations, at the end of the class, return a ``Result``.
    """

    def __init__(
        self,
        state_machine: WorkflowStateMachine,
        storage: StorageAdapter,
        scheduler: SchedulerAdapter,
        runtime: RuntimeAdapter,
        config: RecoveryConfig,
        events: EventEmitter,
    ) -> None:
        self._sm = state_machine
        self._keys = Namespace(storage, scheduler)
        self._runtime = runtime
        self.config = config
        self._events = events

    async def schedule_recovery(self) -> RecoveryCheckResult:
        """Look at the instance after a restart and set its alarm so that it finishes."""
        info = await self._sm.recoverability(self.config.stale_threshold_ms)
        if not info.can_recover:
            return RecoveryCheckResult(
                False, info.reason, info.stale_duration_ms, info.current_status
            )
        now = self._runtime.now()
        status = await self._sm.status()
        attempts = await self._sm.recovery_attempts()
        at = now + self.config.recovery_delay_ms
        attempt: int | None = None
        match status:
            case Paused(resume_at=resume_at):
                # Fix: never resume a pause early; at worst a little late. A wait without
                # a deadline comes due to look at its inbox, and pauses again if nothing came.
                at = at if resume_at is None else max(resume_at, at)
            case Queued():
                pass
            case _:
                attempt = attempts + 1
                if attempts >= self.config.max_recovery_attempts:
                    await self._give_up(status, attempts)
                    return RecoveryCheckResult(
                        False, "max_attempts_exceeded", info.stale_duration_ms, "Failed", attempts
                    )
        await self._keys.schedule(at)
        return RecoveryCheckResult(
            True, info.reason, info.stale_duration_ms, info.current_status, attempt
        )

    async def recover(
        self, reason: RecoverReason = "infrastructure_restart"
    ) -> RecoveryExecuteResult:
        """Count a recovery and apply ``Recover``; past the limit, fail the instance instead."""
        status = await self._sm.status()
        if status is None or status.tag != "Running":
            current = None if status is None else status.tag
            return RecoveryExecuteResult(False, 0, "not_running", current)
        attempts = await self._sm.recovery_attempts()
        if attempts >= self.config.max_recovery_attempts:
            await self._give_up(status, attempts)
            return RecoveryExecuteResult(False, attempts, "max_attempts_exceeded", "Failed")
        async with self._keys.transaction():
            attempt = await self._sm.count_recovery()
            new = await self._sm.transition(Recover(reason=reason, attempt=attempt))
        (await self._bound()).emit(WorkflowRecovered, attempt=attempt, reason=reason)
        return RecoveryExecuteResult(True, attempt, "recovered", new.tag)

    async def _give_up(self, status: WorkflowStatus | None, attempts: int) -> None:
        cause = RecoveryError("max_attempts_exceeded", attempts, self.config.max_recovery_attempts)
        error = WorkflowError(message=str(cause), type="RecoveryError")
        async with self._keys.transaction():
            steps = await self._sm.completed_steps()
            await self._sm.transition(Fail(error=error, completed_steps=steps))
            await self._keys.clear_alarm()
        (await self._bound()).emit(WorkflowFailed, error=error, completed_steps=steps)

    async def _bound(self) -> BoundEmitter:
        if not self._events.enabled:
            return self._events.bound("unknown")
        state = await self._sm.state()
        if state is None:
            return self._events.bound("unknown")
        return self._events.bound(state.workflow_name, state.execution_id)

    async def stats(self) -> RecoveryStats:
        """The counters: attempts so far, the limit, the last attempt's time."""
        attempts = await self._sm.recovery_attempts()
        return RecoveryStats(
            attempts=attempts,
            max_attempts=self.config.max_recovery_attempts,
            last_attempt_at=await self._sm.last_recovery_at(),
            max_exceeded=attempts >= self.config.max_recovery_attempts,
        )

    # The original's operations, each answering a ``Result``.
    check_and_schedule_recovery = operation(schedule_recovery)
    execute_recovery = operation(recover)
    get_stats = operation(stats)
