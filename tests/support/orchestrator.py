"""The workflows and checks that the orchestrator tests share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from returns.result import Failure, Result

import durably
from durably.domain.errors import OrchestratorError
from tests.support.harness import Harness
from tests.support.runtimes import RuntimeFactory

__all__ = ["Body", "Receipt", "checkout", "failure", "harness", "two_steps"]

Body = Callable[[Any], Awaitable[Any]]


@attrs.frozen
class Receipt:
    """What ``checkout`` returns: an attrs class, stored as JSON."""

    order_id: str
    amount: int


async def checkout(order_id: str) -> Receipt:
    """A workflow of one step that returns a ``Receipt``."""
    return await durably.step("charge", lambda: Receipt(order_id, 42))


async def two_steps(_: Any) -> str:
    """Step ``a``, a sleep of 5 s, step ``b``."""
    await durably.step("a", lambda: "A")
    await durably.sleep("5s")
    await durably.step("b", lambda: "B")
    return "done"


def harness(runtimes: RuntimeFactory, body: Body = two_steps, **more: Body) -> Harness:
    """Instance ``o1`` of workflow ``wf`` running ``body``, beside the workflows ``more``."""
    workflows = [durably.make(body, name="wf")]
    workflows += [durably.make(fn, name=name) for name, fn in more.items()]
    return Harness(runtimes("o1", 1000), *workflows)


def failure(result: Result[Any, OrchestratorError]) -> OrchestratorError:
    """The ``OrchestratorError`` of a failed operation."""
    assert isinstance(result, Failure), result
    error = result.failure()
    assert isinstance(error, OrchestratorError)
    return error
