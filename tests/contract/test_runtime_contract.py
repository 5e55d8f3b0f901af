"""The ``RuntimeAdapter`` contract and the ``InstanceRuntime`` bundle, on every backend."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
from returns.result import Success

from durably.ports import InstanceRuntime


@pytest.mark.parametrize("instance_id", ["instance-a", "orch-test-123", "ünïcødé/🎉"])
def test_instance_id_is_the_one_asked_for(
    make_runtime: Callable[[str], InstanceRuntime], instance_id: str
) -> None:
    runtime = make_runtime(instance_id)
    assert runtime.runtime.instance_id == instance_id
    assert runtime.instance_id == instance_id


def test_now_is_an_int(runtime_a: InstanceRuntime) -> None:
    now = runtime_a.runtime.now()
    assert type(now) is int
    assert now >= 0


def test_now_does_not_go_backwards(runtime_a: InstanceRuntime) -> None:
    readings = [runtime_a.runtime.now() for _ in range(50)]
    assert readings == sorted(readings)


def test_now_follows_the_backends_clock(
    runtime_a: InstanceRuntime, advance_clock: Callable[[int], None]
) -> None:
    before = runtime_a.now()
    advance_clock(5_000)
    assert runtime_a.now() == before + 5_000
    advance_clock(0)
    assert runtime_a.now() == before + 5_000


def test_runtimes_of_one_backend_read_one_clock(
    runtime_a: InstanceRuntime,
    runtime_b: InstanceRuntime,
    advance_clock: Callable[[int], None],
) -> None:
    advance_clock(1_234)
    assert runtime_a.now() == runtime_b.now()


def test_instance_runtime_delegates_instance_id_and_now(runtime_a: InstanceRuntime) -> None:
    assert runtime_a.instance_id == runtime_a.runtime.instance_id
    before = runtime_a.runtime.now()
    now = runtime_a.now()
    after = runtime_a.runtime.now()
    assert before <= now <= after


async def test_instance_runtime_exposes_the_instances_storage_and_scheduler(
    runtime_a: InstanceRuntime, make_runtime: Callable[[str], InstanceRuntime]
) -> None:
    await runtime_a.storage.put("k", "v")
    await runtime_a.scheduler.schedule(2_000)
    again = make_runtime(runtime_a.instance_id)
    assert await again.storage.get("k") == Success("v")
    assert await again.scheduler.get_scheduled() == Success(2_000)
    other = make_runtime("someone-else")
    assert await other.storage.get("k") == Success(None)
    assert await other.scheduler.get_scheduled() == Success(None)


@attrs.frozen
class FixedRuntime:
    """A ``RuntimeAdapter`` that answers fixed values."""

    instance_id: str
    time_ms: int

    def now(self) -> int:
        """The fixed time."""
        return self.time_ms


def test_instance_runtime_reads_whatever_runtime_it_holds(runtime_a: InstanceRuntime) -> None:
    bundle = InstanceRuntime(
        storage=runtime_a.storage,
        scheduler=runtime_a.scheduler,
        runtime=FixedRuntime("fixed-id", 42),
        inbox=runtime_a.inbox,
    )
    assert bundle.instance_id == "fixed-id"
    assert bundle.now() == 42
    assert bundle.storage is runtime_a.storage
    assert bundle.scheduler is runtime_a.scheduler


def test_instance_runtime_is_immutable(runtime_a: InstanceRuntime) -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        runtime_a.runtime = FixedRuntime("x", 0)  # type: ignore[misc]
