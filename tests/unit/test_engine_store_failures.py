"""Every ``Engine`` method answers a store that fails with a ``Failure``, never a raise.

The fault is injected into the ``memory://`` backend at the read or write the method
depends on; the answer must be a ``Failure`` whose error is an ``InfrastructureError``
(the branch that says "retry later"). Before, ``result`` and ``run`` raised the
``StorageError`` of a failed read of the output, and ``purge`` that of a failed lease.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from returns.result import Failure, Result

import durably
from durably.adapters.memory import MemoryBackend
from durably.domain import keys
from durably.domain.errors import InfrastructureError, StorageError, branch_of
from durably.domain.results import ok
from durably.engine import Engine
from durably.testing import EngineFactory

pytestmark = pytest.mark.timeout(30)


@durably.workflow
async def double(x: int) -> int:
    return await durably.step("double", lambda: x * 2)


@durably.workflow
async def tick(at: durably.Tick) -> None:
    return None


@contextmanager
def failing(
    engine: Engine, *operations: str, when: Callable[..., bool] = lambda *_: True
) -> Iterator[None]:
    """While inside, the engine's backend fails ``operations`` (when ``when(*args)``)."""
    backend = engine.host
    assert isinstance(backend, MemoryBackend)

    def fault(operation: str) -> Callable[..., Awaitable[Any]]:
        original = getattr(backend, operation)

        async def failing_operation(*args: Any, **kwargs: Any) -> Any:
            if when(*args):
                raise StorageError(operation, None, "injected fault")
            return await original(*args, **kwargs)

        return failing_operation

    for operation in operations:
        setattr(backend, operation, fault(operation))  # shadows the method on this backend
    try:
        yield
    finally:
        for operation in operations:
            delattr(backend, operation)


def reading(key: str) -> Callable[..., bool]:
    """Only reads of ``key``."""
    return lambda _instance_id, read_key, *_: read_key == key


ALL_READS = ("read", "read_many", "read_prefix", "list_instances", "instance", "read_inbox")


async def completed(engine: Engine, instance_id: str = "done") -> str:
    assert ok(await engine.start(double, 21, id=instance_id)).completed
    return instance_id


# Per public method: what to set up, which faults to inject, the call.
Case = Callable[[Engine], Awaitable[Result[Any, Any]]]


async def _start(engine: Engine) -> Result[Any, Any]:
    with failing(engine, "commit"):
        return await engine.start(double, 1, id="s-1")


async def _queue(engine: Engine) -> Result[Any, Any]:
    with failing(engine, "commit"):
        return await engine.queue(double, 1, id="q-1")


async def _run(engine: Engine) -> Result[Any, Any]:
    # The run completes; reading its output back fails.
    with failing(engine, "read", when=reading(keys.OUTPUT)):
        return await engine.run(double, 1, id="r-1")


async def _result(engine: Engine) -> Result[Any, Any]:
    instance_id = await completed(engine)
    with failing(engine, "read", when=reading(keys.TOMBSTONE)):
        return await engine.result(instance_id)


async def _status(engine: Engine) -> Result[Any, Any]:
    instance_id = await completed(engine)
    with failing(engine, *ALL_READS):
        return await engine.status(instance_id)


async def _cancel(engine: Engine) -> Result[Any, Any]:
    ok(await engine.queue(double, 1, id="c-1"))
    with failing(engine, "acquire"):
        return await engine.cancel("c-1")


async def _list(engine: Engine) -> Result[Any, Any]:
    with failing(engine, *ALL_READS):
        return await engine.list()


async def _steps(engine: Engine) -> Result[Any, Any]:
    instance_id = await completed(engine)
    with failing(engine, *ALL_READS):
        return await engine.steps(instance_id)


async def _timeline(engine: Engine) -> Result[Any, Any]:
    instance_id = await completed(engine)
    with failing(engine, *ALL_READS):
        return await engine.timeline(instance_id)


async def _purge(engine: Engine) -> Result[Any, Any]:
    await completed(engine)
    with failing(engine, "acquire"):  # the candidates are found; leasing one fails
        return await engine.purge()


async def _purge_candidates(engine: Engine) -> Result[Any, Any]:
    await completed(engine)
    with failing(engine, *ALL_READS):
        return await engine.purge_candidates()


async def _send_event(engine: Engine) -> Result[Any, Any]:
    await completed(engine)
    with failing(engine, "append"):
        return await engine.send_event("done", "ping", {"n": 1})


async def _get_event(engine: Engine) -> Result[Any, Any]:
    await completed(engine)
    with failing(engine, *ALL_READS):
        return await engine.get_event("done", "stage")


async def _queue_stats(engine: Engine) -> Result[Any, Any]:
    with failing(engine, "queue_stats"):
        return await engine.queue_stats()


async def _resume(engine: Engine) -> Result[Any, Any]:
    instance_id = await completed(engine)
    with failing(engine, "acquire"):
        return await engine.resume(instance_id)


async def _fork(engine: Engine) -> Result[Any, Any]:
    instance_id = await completed(engine)
    with failing(engine, *ALL_READS):
        return await engine.fork(instance_id, from_step="double")


async def _cancel_many(engine: Engine) -> Result[Any, Any]:
    ok(await engine.queue(double, 1, id="c-1"))
    with failing(engine, *ALL_READS):
        return await engine.cancel_many(workflow="double")


async def _cancel_candidates(engine: Engine) -> Result[Any, Any]:
    ok(await engine.queue(double, 1, id="c-1"))
    with failing(engine, *ALL_READS):
        return await engine.cancel_candidates(status="Queued")


async def _schedules(engine: Engine) -> Result[Any, Any]:
    with failing(engine, "read_schedules"):
        return await engine.schedules()


async def _pause_schedule(engine: Engine) -> Result[Any, Any]:
    with failing(engine, "read_schedules"):
        return await engine.pause_schedule("nightly")


async def _resume_schedule(engine: Engine) -> Result[Any, Any]:
    with failing(engine, "write_schedule"):
        return await engine.resume_schedule("nightly")


async def _trigger_schedule(engine: Engine) -> Result[Any, Any]:
    with failing(engine, "write_schedule"):
        return await engine.trigger_schedule("nightly")


CASES: dict[str, Case] = {
    "start": _start,
    "queue": _queue,
    "run": _run,
    "result": _result,
    "status": _status,
    "cancel": _cancel,
    "list": _list,
    "steps": _steps,
    "timeline": _timeline,
    "purge": _purge,
    "purge_candidates": _purge_candidates,
    "send_event": _send_event,
    "get_event": _get_event,
    "queue_stats": _queue_stats,
    "resume": _resume,
    "fork": _fork,
    "cancel_many": _cancel_many,
    "cancel_candidates": _cancel_candidates,
    "schedules": _schedules,
    "pause_schedule": _pause_schedule,
    "resume_schedule": _resume_schedule,
    "trigger_schedule": _trigger_schedule,
}


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    nightly = durably.Schedule("nightly", tick, cron="0 3 * * *")
    async with Engine([double, tick], backend="memory://", schedules=[nightly]) as opened:
        yield opened


@pytest.mark.parametrize("method", CASES)
async def test_a_failing_store_is_a_failure_of_the_infrastructure_branch(
    engine: Engine, method: str
) -> None:
    answer = await CASES[method](engine)
    assert isinstance(answer, Failure), answer
    error = answer.failure()
    assert isinstance(error, InfrastructureError), error
    assert branch_of(error) is InfrastructureError
    assert "injected fault" in str(error)


def test_every_public_method_answering_a_result_is_covered() -> None:
    answering = {
        name
        for name, member in inspect.getmembers(Engine, inspect.iscoroutinefunction)
        if not name.startswith("_")
        and "Result[" in str(inspect.signature(member).return_annotation)
    }
    assert answering == set(CASES)


async def test_result_under_the_virtual_clock_answers_a_failing_store_too(
    durably_engine: EngineFactory,
) -> None:
    engine = await durably_engine([double])
    instance_id = await completed(engine)
    with failing(engine, "read", when=reading(keys.OUTPUT)):
        answer = await engine.result(instance_id)
    assert isinstance(answer, Failure), answer
    assert isinstance(answer.failure(), StorageError)
