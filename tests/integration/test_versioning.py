"""Code changes under running instances (coordination.md section 5), on memory, SQLite and
PostgreSQL: the determinism check, ``patched``, and the replay check of stored histories.

The workflow's code is chosen by ``CODE["v"]`` at each run, so that one engine sees a
deploy: an instance paused under one version is taken up again under another.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import durably
from durably.domain.status import Completed, Failed, Paused
from durably.engine import Engine, Lease
from durably.engine.replay import read_histories, replay_histories
from durably.testing import ManualClock
from tests.integration.pg_support import acquire_database, drop_schema, engine_url, release_database

pytestmark = pytest.mark.timeout(90)

T0 = 1_767_225_600_000
HOUR = 3_600_000
LEASE = Lease(duration="30s", renew_every="10s")

VERSIONS: dict[str, tuple[list[str], list[str]]] = {
    # (steps before the nap, steps after it)
    "v1": (["a", "b"], ["c"]),
    "renamed": (["a-renamed", "b"], ["c"]),
    "removed": (["b"], ["c"]),
    "swapped": (["b", "a"], ["c"]),
    "inserted": (["a", "x", "b"], ["c"]),
    "appended": (["a", "b"], ["c", "d"]),
}
CODE = {"v": "v1"}
calls: list[str] = []


def run(name: str) -> str:
    calls.append(name)
    return name


@durably.workflow
async def flow(n: int) -> list[str]:
    before, after = VERSIONS[CODE["v"]]
    done: list[str] = [await durably.step(name, functools.partial(run, name)) for name in before]
    await durably.sleep("1h", name="nap")
    return done + [await durably.step(name, functools.partial(run, name)) for name in after]


@durably.workflow
async def taxed(n: int) -> list[str]:
    done = [await durably.step("a", lambda: run("a"))]
    if CODE["v"] == "v2" and durably.patched("v2-tax"):
        done.append(await durably.step("tax-v2", lambda: run("tax-v2")))
    else:
        done.append(await durably.step("tax", lambda: run("tax")))
    await durably.sleep("1h", name="nap")
    done.append(await durably.step("c", lambda: run("c")))
    return done


@pytest.fixture(autouse=True)
def _reset() -> None:
    CODE["v"] = "v1"
    calls.clear()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "memory":
        yield "memory://"
        return
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'versions.db'}"
        return
    dsn = acquire_database()
    schema = f"versions_{abs(hash(request.node.name)) % 10**10}"
    try:
        yield engine_url(dsn, schema)
    finally:
        await asyncio.to_thread(drop_schema, dsn, schema)
        release_database()


async def records(engine: Engine, id: str) -> dict[str, str]:
    """The instance's point records (steps, sleeps, markers): what a replay may not touch."""
    stored = await engine.host.read_prefix(id, "")
    return {k: v for k, v in stored.items() if k.startswith(("step:", "sleep:", "patch:"))}


CHANGES = [
    ("renamed", 0, "a", "a-renamed"),
    ("removed", 0, "a", "b"),
    ("swapped", 0, "a", "b"),
    ("inserted", 1, "b", "x"),
]


@pytest.mark.parametrize(("version", "position", "recorded", "requested"), CHANGES)
async def test_an_incompatible_change_fails_the_instance_naming_both_keys(
    url: str, version: str, position: int, recorded: str, requested: str
) -> None:
    clock = ManualClock(T0)
    async with Engine([flow], backend=url, clock=clock, lease=LEASE) as engine:
        paused = (await engine.start(flow, 1, id="f-1")).unwrap().status
        assert isinstance(paused, Paused)
        before = await records(engine, "f-1")
        CODE["v"] = version  # the deploy
        calls.clear()

        [found] = await replay_histories(await read_histories(engine.host), [flow])
        assert (found.instance_id, found.position) == ("f-1", position)
        assert (found.recorded, found.requested) == (recorded, requested)
        assert calls == []  # the replay check runs no step

        clock.time_ms += 2 * HOUR
        assert await engine.run_until_idle() == 1
        status = (await engine.status("f-1")).unwrap().status
        assert isinstance(status, Failed)
        assert status.error.type == "NonDeterminismError"
        expected = (
            f"at position {position} the history has {recorded!r} but the code asked for "
            f"{requested!r}"
        )
        assert expected in status.error.message
        assert "durably.patched" in status.error.message
        assert calls == []  # no step of the new code ran
        assert await records(engine, "f-1") == before  # nothing else written


async def test_a_step_appended_after_the_history_is_fine(url: str) -> None:
    clock = ManualClock(T0)
    async with Engine([flow], backend=url, clock=clock, lease=LEASE) as engine:
        assert isinstance((await engine.start(flow, 1, id="f-2")).unwrap().status, Paused)
        CODE["v"] = "appended"
        calls.clear()
        assert await replay_histories(await read_histories(engine.host), [flow]) == []
        clock.time_ms += 2 * HOUR
        assert await engine.run_until_idle() == 1
        status = (await engine.status("f-2")).unwrap().status
        assert isinstance(status, Completed)
        assert (await engine.result("f-2")).unwrap() == ["a", "b", "c", "d"]
        assert calls == ["c", "d"]  # a and b came from the history


async def test_patched_keeps_old_histories_on_the_old_path(url: str) -> None:
    clock = ManualClock(T0)
    async with Engine([taxed], backend=url, clock=clock, lease=LEASE) as engine:
        assert isinstance((await engine.start(taxed, 1, id="old")).unwrap().status, Paused)
        CODE["v"] = "v2"
        assert isinstance((await engine.start(taxed, 2, id="new")).unwrap().status, Paused)
        assert calls == ["a", "tax", "a", "tax-v2"]
        calls.clear()
        # Both histories fit the patched code: the replay check agrees.
        assert await replay_histories(await read_histories(engine.host), [taxed]) == []
        clock.time_ms += 2 * HOUR
        assert await engine.run_until_idle() == 2
        assert (await engine.result("old")).unwrap() == ["a", "tax", "c"]
        assert (await engine.result("new")).unwrap() == ["a", "tax-v2", "c"]
        assert calls == ["c", "c"]
        assert "patch:v2-tax" in await records(engine, "new")
        assert not any(k.startswith("patch:") for k in await records(engine, "old"))
        # Without the guard, the new code does not fit the old history.
        CODE["v"] = "v1"
        [found] = await replay_histories(await read_histories(engine.host), [taxed])
        assert (found.instance_id, found.position) == ("new", 1)
        assert found.recorded == "patch:v2-tax"
