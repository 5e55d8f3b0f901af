"""A value that one backend can store and another cannot is refused the same way on every
backend: at the step, with ``SerializationError`` naming the step and the reason, and the
step runs once (on PostgreSQL a NUL character used to fail every commit, so the step ran
again at every lease expiry until a ``RecoveryError`` that did not name the cause).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import durably
from durably.domain import serialization
from durably.domain.results import ok
from durably.domain.status import Failed
from durably.engine import Engine
from tests.integration.processes import backend_url

pytestmark = pytest.mark.timeout(30)

RUNS: list[str] = []


def returning(value: Any) -> Callable[[], Any]:
    def run() -> Any:
        RUNS.append("ran")
        return value

    return run


@durably.workflow
async def nul(_: None) -> None:
    await durably.step("with nul", returning({"note": "a\x00b"}))


@durably.workflow
async def surrogate(_: None) -> None:
    await durably.step("lone surrogate", returning("\ud800"))


@durably.workflow
async def plain_nul(_: None) -> None:
    await durably.step("plain nul", returning("x\x00"))


@durably.workflow
async def big(_: None) -> None:
    await durably.step("big", returning("x" * 5_000))


@durably.workflow
async def long_name(_: None) -> None:
    await durably.step("n" * 2_000, returning(1))


CASES = {
    "nul": (nul, "with nul", "NUL"),
    "plain_nul": (plain_nul, "plain nul", "NUL"),
    "surrogate": (surrogate, "lone surrogate", "Unicode"),
    "big": (big, "big", "over the limit"),
    "long_name": (long_name, None, "too long"),
}


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "memory":
        yield "memory://"
        return
    async with backend_url(request.param, tmp_path, "refused") as found:
        yield found


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_value_some_backend_cannot_store_fails_the_step_once_everywhere(
    url: str, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case == "big":  # a smaller limit than PostgreSQL's 255 MiB, to test it quickly
        monkeypatch.setattr(serialization, "MAX_VALUE_BYTES", 4_000)
    RUNS.clear()
    workflow, step, reason = CASES[case]
    async with Engine([nul, surrogate, plain_nul, big, long_name], backend=url) as engine:
        ok(await engine.start(workflow, None, id=case))
        status = ok(await engine.status(case)).status
        again = await engine.run_until_idle()  # nothing left to retry or recover
    assert isinstance(status, Failed), status
    error = status.error
    assert reason in error.message, error.message
    if step is not None:
        assert error.type == "SerializationError"
        assert error.step_name == step
        assert step in error.message
        assert RUNS == ["ran"]
    assert again == 0
