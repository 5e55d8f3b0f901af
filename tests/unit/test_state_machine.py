"""WorkflowStateMachine: status, transitions and bookkeeping of one instance."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from returns.result import Failure, Result, Success

from durably.domain import keys
from durably.domain.errors import InvalidTransitionError, SerializationError, StorageError
from durably.domain.records import JsonValue
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
from durably.domain.transitions import Complete, Pause, Resume, Start
from durably.ports import InstanceRuntime, StorageAdapter
from durably.services.state_machine import RecoverabilityInfo, WorkflowState, WorkflowStateMachine
from durably.testing import FailingStorage
from tests.support.runtimes import RuntimeFactory, RuntimeHandle

T0 = 1_000


def make(
    runtimes: RuntimeFactory, initial_time: int = T0
) -> tuple[WorkflowStateMachine, InstanceRuntime, RuntimeHandle]:
    runtime, handle = runtimes(instance_id="sm-1", initial_time=initial_time)
    return WorkflowStateMachine(runtime.storage, runtime.runtime), runtime, handle


async def put_status(runtime: InstanceRuntime, status: WorkflowStatus) -> None:
    assert isinstance(await runtime.storage.put(keys.STATUS, encode(status)), Success)


class CountingStorage:
    """Delegates to a storage and records every call (operation, key count, transaction depth)."""

    def __init__(self, inner: StorageAdapter) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.keys_written = 0
        self.depth = 0
        self.log: list[tuple[str, str | None, int]] = []

    def reset(self) -> None:
        self.calls.clear()
        self.keys_written = 0
        self.log.clear()

    def _record(self, operation: str, key: str | None = None) -> None:
        self.calls[operation] += 1
        self.log.append((operation, key, self.depth))

    async def get(self, key: str) -> Result[JsonValue | None, StorageError]:
        self._record("get", key)
        return await self.inner.get(key)

    async def get_many(self, keys: Sequence[str]) -> Result[dict[str, JsonValue], StorageError]:
        self._record("get_many", ",".join(keys))
        return await self.inner.get_many(keys)

    async def put(self, key: str, value: JsonValue) -> Result[None, StorageError]:
        self._record("put", key)
        self.keys_written += 1
        return await self.inner.put(key, value)

    async def put_batch(self, entries: Mapping[str, JsonValue]) -> Result[None, StorageError]:
        self._record("put_batch")
        self.keys_written += len(entries)
        return await self.inner.put_batch(entries)

    async def delete(self, key: str) -> Result[bool, StorageError]:
        self._record("delete", key)
        return await self.inner.delete(key)

    async def delete_all(self) -> Result[None, StorageError]:
        self._record("delete_all")
        return await self.inner.delete_all()

    async def list(self, prefix: str) -> Result[dict[str, JsonValue], StorageError]:
        self._record("list", prefix)
        return await self.inner.list(prefix)

    def transaction(self) -> AbstractAsyncContextManager[None]:
        self._record("transaction")
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        async with self.inner.transaction():
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1


# --- initialize ----------------------------------------------------------------------------------


async def test_initialize_stores_pending_name_input_and_execution_id(
    runtimes: RuntimeFactory,
) -> None:
    sm, _, handle = make(runtimes)
    assert (await sm.initialize("order", {"id": 7}, "exec-1")).unwrap() is None
    snapshot = handle.storage_snapshot()
    assert snapshot[keys.STATUS] == {"tag": "Pending"}
    assert snapshot[keys.NAME] == "order"
    assert snapshot[keys.INPUT] == {"id": 7}
    assert snapshot[keys.EXECUTION_ID] == "exec-1"
    assert (await sm.get_status()).unwrap() == Pending()


async def test_initialize_without_execution_id_stores_none(runtimes: RuntimeFactory) -> None:
    sm, _, handle = make(runtimes)
    (await sm.initialize("order", None)).unwrap()
    assert keys.EXECUTION_ID not in handle.storage_snapshot()
    state = (await sm.get_state()).unwrap()
    assert state is not None
    assert state.execution_id is None
    assert state.input is None


async def test_initialize_is_one_commit(runtimes: RuntimeFactory) -> None:
    sm, _, handle = make(runtimes)
    before = handle.commits
    (await sm.initialize("order", [1, 2], "e")).unwrap()
    assert handle.commits == before + 1


@pytest.mark.parametrize("bad_input", [object(), {1: "int key"}, float("nan"), {"a": {1, 2j}}])
async def test_initialize_unserializable_input_fails_and_stores_nothing(
    runtimes: RuntimeFactory, bad_input: object
) -> None:
    sm, _, handle = make(runtimes)
    result = await sm.initialize("order", bad_input, "exec-1")
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, SerializationError)
    assert error.key == keys.INPUT
    assert error.type_name is not None
    assert handle.storage_snapshot() == {}
    assert handle.commits == 0
    assert (await sm.get_status()).unwrap() is None


# --- get_status / get_state ----------------------------------------------------------------------


async def test_get_status_and_state_are_none_without_a_workflow(runtimes: RuntimeFactory) -> None:
    sm, _, _ = make(runtimes)
    assert (await sm.get_status()).unwrap() is None
    assert (await sm.get_state()).unwrap() is None


async def test_get_state_defaults_name_to_unknown_when_the_name_key_is_missing(
    runtimes: RuntimeFactory,
) -> None:
    sm, runtime, _ = make(runtimes)
    await put_status(runtime, Running(5))
    state = (await sm.get_state()).unwrap()
    assert state is not None
    assert state.workflow_name == "unknown"
    assert state.status == Running(5)


async def test_get_state_has_every_field(runtimes: RuntimeFactory) -> None:
    sm, _, handle = make(runtimes)
    (await sm.initialize("order", {"items": [1, 2]}, "exec-9")).unwrap()
    handle.set_time(2_000)
    (await sm.apply_transition(Start(input={"items": [1, 2]}))).unwrap()
    (await sm.mark_step_completed("fetch")).unwrap()
    (await sm.mark_step_completed("charge")).unwrap()
    (await sm.increment_recovery_attempts()).unwrap()
    (await sm.increment_recovery_attempts()).unwrap()
    (await sm.set_cancelled("user asked")).unwrap()
    state = (await sm.get_state()).unwrap()
    assert state == WorkflowState(
        status=Running(2_000),
        workflow_name="order",
        input={"items": [1, 2]},
        execution_id="exec-9",
        completed_steps=("fetch", "charge"),
        recovery_attempts=2,
        cancelled=True,
        cancel_reason="user asked",
    )


async def test_get_state_of_a_fresh_workflow(runtimes: RuntimeFactory) -> None:
    sm, _, _ = make(runtimes)
    (await sm.initialize("order", 3)).unwrap()
    state = (await sm.get_state()).unwrap()
    assert state == WorkflowState(
        status=Pending(),
        workflow_name="order",
        input=3,
        execution_id=None,
        completed_steps=(),
        recovery_attempts=0,
        cancelled=False,
        cancel_reason=None,
    )


async def test_a_stored_status_that_cannot_be_read_is_a_serialization_failure(
    runtimes: RuntimeFactory,
) -> None:
    sm, runtime, _ = make(runtimes)
    (await runtime.storage.put(keys.STATUS, {"tag": "Hibernating"})).unwrap()
    result = await sm.get_status()
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, SerializationError)
    assert error.key == keys.STATUS
    assert "Hibernating" in str(error)


# --- apply_transition ----------------------------------------------------------------------------


async def test_legal_transition_is_stamped_with_the_runtime_clock(runtimes: RuntimeFactory) -> None:
    sm, _, handle = make(runtimes, initial_time=5_000)
    (await sm.initialize("order", None)).unwrap()
    assert (await sm.apply_transition(Start())).unwrap() == Running(5_000)
    assert (await sm.get_status()).unwrap() == Running(5_000)
    handle.advance_time(250)
    assert (await sm.apply_transition(Complete(("a",), 250))).unwrap() == Completed(5_250)
    assert handle.storage_snapshot()[keys.STATUS] == {"tag": "Completed", "completed_at": 5_250}


async def test_transition_from_no_workflow(runtimes: RuntimeFactory) -> None:
    sm, _, _ = make(runtimes, initial_time=42)
    assert (await sm.apply_transition(Start(input=1))).unwrap() == Running(42)


async def test_pause_copies_its_fields(runtimes: RuntimeFactory) -> None:
    sm, runtime, _ = make(runtimes)
    await put_status(runtime, Running(1))
    new = (await sm.apply_transition(Pause("retry", 9_000, "charge"))).unwrap()
    assert new == Paused("retry", 9_000, "charge")
    assert (await sm.get_status()).unwrap() == Paused("retry", 9_000, "charge")


async def test_illegal_transition_fails_and_leaves_the_status_unchanged(
    runtimes: RuntimeFactory,
) -> None:
    sm, runtime, handle = make(runtimes)
    await put_status(runtime, Completed(10))
    before = handle.commits
    result = await sm.apply_transition(Resume())
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, InvalidTransitionError)
    assert error.from_status == "Completed"
    assert error.transition == "Resume"
    assert error.valid_transitions == ()
    assert (await sm.get_status()).unwrap() == Completed(10)
    assert handle.commits == before


async def test_illegal_transition_from_no_workflow_names_none(runtimes: RuntimeFactory) -> None:
    sm, _, handle = make(runtimes)
    result = await sm.apply_transition(Resume())
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, InvalidTransitionError)
    assert error.from_status == "none"
    assert error.valid_transitions == ("Start", "Queue")
    assert handle.storage_snapshot() == {}


async def test_transition_is_one_commit(runtimes: RuntimeFactory) -> None:
    sm, _, handle = make(runtimes)
    (await sm.initialize("order", None)).unwrap()
    before = handle.commits
    (await sm.apply_transition(Start())).unwrap()
    assert handle.commits == before + 1


async def test_transition_reads_checks_and_writes_inside_one_transaction(
    runtimes: RuntimeFactory,
) -> None:
    runtime, _ = runtimes(instance_id="sm-tx", initial_time=T0)
    counting = CountingStorage(runtime.storage)
    sm = WorkflowStateMachine(counting, runtime.runtime)
    (await sm.initialize("order", None)).unwrap()
    counting.reset()
    (await sm.apply_transition(Start())).unwrap()
    assert counting.calls["transaction"] == 1
    status_ops = [(op, depth) for op, key, depth in counting.log if key == keys.STATUS]
    assert ("get", 1) in status_ops
    assert ("put", 1) in status_ops
    assert all(depth == 1 for _, depth in status_ops)


async def test_a_failed_commit_is_a_storage_failure_and_changes_nothing(
    runtimes: RuntimeFactory,
) -> None:
    runtime, _ = runtimes(instance_id="sm-fail", initial_time=T0)
    failing = FailingStorage(runtime.storage)
    sm = WorkflowStateMachine(failing, runtime.runtime)
    (await sm.initialize("order", None)).unwrap()
    failing.fail_on = {"commit"}
    result = await sm.apply_transition(Start())
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), StorageError)
    assert failing.failures == 1
    failing.fail_on = set()
    assert (await sm.get_status()).unwrap() == Pending()


async def test_a_failed_read_is_a_storage_failure(runtimes: RuntimeFactory) -> None:
    runtime, _ = runtimes(instance_id="sm-fail-get", initial_time=T0)
    failing = FailingStorage(runtime.storage, fail_on={"get"})
    sm = WorkflowStateMachine(failing, runtime.runtime)
    result = await sm.apply_transition(Start())
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), StorageError)
    failing.fail_on = set()
    assert (await sm.get_status()).unwrap() is None


# --- check_recoverability ------------------------------------------------------------------------

NOW = 100_000
THRESHOLD = 30_000


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            Running(NOW - THRESHOLD + 1),
            RecoverabilityInfo(False, "running_not_stale", THRESHOLD - 1, "Running"),
        ),
        (Running(NOW - THRESHOLD), RecoverabilityInfo(True, "stale_running", THRESHOLD, "Running")),
        (
            Running(NOW - THRESHOLD - 1),
            RecoverabilityInfo(True, "stale_running", THRESHOLD + 1, "Running"),
        ),
        (Running(NOW), RecoverabilityInfo(False, "running_not_stale", 0, "Running")),
        # A running_at in the future (clock skew) is not negative staleness.
        (Running(NOW + 500), RecoverabilityInfo(False, "running_not_stale", 0, "Running")),
        (Paused("sleep", NOW + 10), RecoverabilityInfo(True, "paused", None, "Paused")),
        (Queued(NOW - 1), RecoverabilityInfo(True, "queued", None, "Queued")),
        (Pending(), RecoverabilityInfo(False, "not_started", None, "Pending")),
        (Completed(1), RecoverabilityInfo(False, "terminal", None, "Completed")),
        (Failed(1, WorkflowError("boom")), RecoverabilityInfo(False, "terminal", None, "Failed")),
        (Cancelled(1, "why"), RecoverabilityInfo(False, "terminal", None, "Cancelled")),
    ],
)
async def test_check_recoverability(
    runtimes: RuntimeFactory, status: WorkflowStatus, expected: RecoverabilityInfo
) -> None:
    sm, runtime, _ = make(runtimes, initial_time=NOW)
    await put_status(runtime, status)
    assert (await sm.check_recoverability(THRESHOLD)).unwrap() == expected


async def test_check_recoverability_without_a_workflow(runtimes: RuntimeFactory) -> None:
    sm, _, _ = make(runtimes, initial_time=NOW)
    info = (await sm.check_recoverability(THRESHOLD)).unwrap()
    assert info == RecoverabilityInfo(False, "no_workflow", None, None)


async def test_check_recoverability_zero_threshold_makes_any_running_stale(
    runtimes: RuntimeFactory,
) -> None:
    sm, runtime, _ = make(runtimes, initial_time=NOW)
    await put_status(runtime, Running(NOW))
    info = (await sm.check_recoverability(0)).unwrap()
    assert info.can_recover
    assert info.stale_duration_ms == 0


# --- completed steps -----------------------------------------------------------------------------


async def test_mark_step_completed_is_idempotent_and_keeps_first_completion_order(
    runtimes: RuntimeFactory,
) -> None:
    sm, _, handle = make(runtimes)
    for name in ["b", "a", "c"]:
        (await sm.mark_step_completed(name)).unwrap()
    before = handle.commits
    (await sm.mark_step_completed("a")).unwrap()
    (await sm.mark_step_completed("b")).unwrap()
    assert handle.commits == before  # a repeat writes nothing
    (await sm.mark_step_completed("d")).unwrap()
    assert (await sm.get_completed_steps()).unwrap() == ("b", "a", "c", "d")


async def test_get_completed_steps_is_empty_at_first(runtimes: RuntimeFactory) -> None:
    sm, _, _ = make(runtimes)
    assert (await sm.get_completed_steps()).unwrap() == ()


async def test_completed_step_order_is_not_key_order(runtimes: RuntimeFactory) -> None:
    sm, _, _ = make(runtimes)
    names = [f"step-{i}" for i in (10, 9, 2, 1, 100)]
    for name in names:
        (await sm.mark_step_completed(name)).unwrap()
    assert (await sm.get_completed_steps()).unwrap() == tuple(names)


async def test_step_names_with_colons_and_percents_round_trip(runtimes: RuntimeFactory) -> None:
    sm, _, handle = make(runtimes)
    names = ["a:b", "50%", "x%3Ay", "%25", "::", "plain", "a%3Ab"]
    for name in names:
        (await sm.mark_step_completed(name)).unwrap()
    assert (await sm.get_completed_steps()).unwrap() == tuple(names)
    markers = [k for k in handle.storage_snapshot() if k.startswith(keys.COMPLETED_PREFIX)]
    assert len(markers) == len(names)  # no two names collide on one key


async def test_mark_step_completed_is_one_commit(runtimes: RuntimeFactory) -> None:
    sm, _, handle = make(runtimes)
    before = handle.commits
    (await sm.mark_step_completed("a")).unwrap()
    assert handle.commits == before + 1


async def test_mark_step_completed_does_constant_storage_work(runtimes: RuntimeFactory) -> None:
    runtime, handle = runtimes(instance_id="sm-scale", initial_time=T0)
    counting = CountingStorage(runtime.storage)
    sm = WorkflowStateMachine(counting, runtime.runtime)
    per_mark: dict[int, tuple[dict[str, int], int, int]] = {}
    for n in range(1, 2001):
        counting.reset()
        commits = handle.commits
        (await sm.mark_step_completed(f"step-{n}")).unwrap()
        if n in (2, 10, 2000):
            per_mark[n] = (dict(counting.calls), counting.keys_written, handle.commits - commits)
    assert per_mark[10] == per_mark[2000]
    assert per_mark[2] == per_mark[2000]
    calls, written, commits = per_mark[2000]
    assert "list" not in calls  # no reading of the other steps
    assert written <= 2
    assert commits == 1
    steps = (await sm.get_completed_steps()).unwrap()
    assert len(steps) == 2000
    assert steps[0] == "step-1"
    assert steps[-1] == "step-2000"


# --- recovery attempts ---------------------------------------------------------------------------


async def test_recovery_attempt_counter(runtimes: RuntimeFactory) -> None:
    sm, _, handle = make(runtimes, initial_time=7_000)
    assert (await sm.get_recovery_attempts()).unwrap() == 0
    assert (await sm.get_last_recovery_at()).unwrap() is None
    assert (await sm.increment_recovery_attempts()).unwrap() == 1
    assert (await sm.get_last_recovery_at()).unwrap() == 7_000
    handle.advance_time(500)
    assert (await sm.increment_recovery_attempts()).unwrap() == 2
    assert (await sm.get_recovery_attempts()).unwrap() == 2
    assert (await sm.get_last_recovery_at()).unwrap() == 7_500
    (await sm.reset_recovery_attempts()).unwrap()
    assert (await sm.get_recovery_attempts()).unwrap() == 0
    assert (await sm.increment_recovery_attempts()).unwrap() == 1


async def test_increment_recovery_attempts_is_one_commit(runtimes: RuntimeFactory) -> None:
    sm, _, handle = make(runtimes)
    before = handle.commits
    (await sm.increment_recovery_attempts()).unwrap()
    assert handle.commits == before + 1


async def test_reset_without_attempts_is_fine(runtimes: RuntimeFactory) -> None:
    sm, _, _ = make(runtimes)
    assert isinstance(await sm.reset_recovery_attempts(), Success)
    assert (await sm.get_recovery_attempts()).unwrap() == 0


# --- cancel flag ---------------------------------------------------------------------------------


async def test_cancel_flag_and_reason(runtimes: RuntimeFactory) -> None:
    sm, _, _ = make(runtimes)
    assert (await sm.is_cancelled()).unwrap() is False
    assert (await sm.get_cancel_reason()).unwrap() is None
    (await sm.set_cancelled("no longer needed")).unwrap()
    assert (await sm.is_cancelled()).unwrap() is True
    assert (await sm.get_cancel_reason()).unwrap() == "no longer needed"


async def test_cancel_without_a_reason(runtimes: RuntimeFactory) -> None:
    sm, _, _ = make(runtimes)
    (await sm.set_cancelled()).unwrap()
    assert (await sm.is_cancelled()).unwrap() is True
    assert (await sm.get_cancel_reason()).unwrap() is None


# --- pending resume time -------------------------------------------------------------------------


async def test_pending_resume_at_set_get_clear(runtimes: RuntimeFactory) -> None:
    sm, _, handle = make(runtimes)
    assert (await sm.get_pending_resume_at()).unwrap() is None
    (await sm.set_pending_resume_at(12_345)).unwrap()
    assert (await sm.get_pending_resume_at()).unwrap() == 12_345
    assert handle.storage_snapshot()[keys.PENDING_RESUME_AT] == 12_345
    (await sm.set_pending_resume_at(20_000)).unwrap()
    assert (await sm.get_pending_resume_at()).unwrap() == 20_000
    (await sm.clear_pending_resume_at()).unwrap()
    assert (await sm.get_pending_resume_at()).unwrap() is None
    assert keys.PENDING_RESUME_AT not in handle.storage_snapshot()


def _result(index: int | None) -> JsonValue:
    meta: dict[str, JsonValue] = {"completed_at": T0, "attempt": 1, "duration_ms": 0}
    if index is not None:
        meta["index"] = index
    return {"value": None, "meta": meta}


async def test_a_result_is_its_step_completion_marker(runtimes: RuntimeFactory) -> None:
    sm, runtime, _ = make(runtimes)
    assert await sm.completion_order() == (0, [])
    for index, name in enumerate(["z", "a:b", "m"]):
        assert isinstance(
            await runtime.storage.put(keys.step(name, "result"), _result(index)), Success
        )
    assert isinstance(await runtime.storage.put(keys.step("m", "attempt"), {"attempt": 2}), Success)
    assert (await sm.get_completed_steps()).unwrap() == ("z", "a:b", "m")
    assert await sm.completion_order() == (3, ["z", "a:b", "m"])


async def test_markers_of_older_databases_keep_their_order_and_the_count_goes_on(
    runtimes: RuntimeFactory,
) -> None:
    sm, runtime, _ = make(runtimes)
    # Written before results carried their place: markers, a count, results without index.
    for name in ("b", "a"):
        (await sm.mark_step_completed(name)).unwrap()
        assert isinstance(
            await runtime.storage.put(keys.step(name, "result"), _result(None)), Success
        )
    assert await sm.completion_order() == (2, ["b", "a"])
    assert isinstance(await runtime.storage.put(keys.step("c", "result"), _result(2)), Success)
    assert (await sm.get_completed_steps()).unwrap() == ("b", "a", "c")
    assert await sm.completion_order() == (3, ["b", "a", "c"])
