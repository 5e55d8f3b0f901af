"""A project sets its tests' start time by overriding the ``durably_clock`` fixture."""

from __future__ import annotations

import pytest

import durably
from durably.testing import EngineFactory, VirtualClock

START = "2030-06-01T08:00:00+00:00"


@pytest.fixture
def durably_clock() -> VirtualClock:
    return VirtualClock(start=START)


@durably.workflow
async def stamp(_: None) -> int:
    return await durably.step("now", lambda: durably.context().now())


async def test_the_engines_run_on_the_overriding_clock(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    engine = await durably_engine([stamp])
    assert durably_engine.clock is durably_clock
    started = (await engine.start(stamp, None, id="s")).unwrap()
    assert started.output == durably_clock.now() == 1_906_531_200_000
