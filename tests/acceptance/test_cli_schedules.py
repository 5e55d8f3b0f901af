"""``durably schedules`` from another process: list (``--json``), pause, resume, and a
trigger recorded by a command that does not have the schedule, started by an engine that
does; unknown ids and a missing id are one-line errors."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durably.engine import Engine
from tests.acceptance.cli_process import Ran, durably

APP = """
import durably


@durably.workflow
async def hourly_report(tick: durably.Tick) -> str:
    return tick.scheduled_at.isoformat()


hourly = durably.Schedule("hourly", hourly_report, every="1h", timezone="Europe/Paris")
engine = durably.Engine([hourly_report], schedules=[hourly])
"""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Engine]:
    """The app's engine (imported from ``tmp_path``), on a SQLite file there."""
    (tmp_path / "sched_app.py").write_text(APP, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("sched_app")
        engine: Engine = module.engine
        yield engine.with_options(backend=f"sqlite:///{tmp_path / 's.db'}")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("sched_app", None)


def run(tmp_path: Path, *argv: str) -> Ran:
    return durably(*argv, "--backend", f"sqlite:///{tmp_path / 's.db'}", cwd=tmp_path)


def listing(tmp_path: Path) -> dict[str, Any]:
    ran = run(tmp_path, "schedules", "--json")
    assert ran.code == 0, ran.err
    [only] = json.loads(ran.out)
    assert isinstance(only, dict)
    return only


async def test_operators_act_from_the_command_line(app: Engine, tmp_path: Path) -> None:
    missing = run(tmp_path, "schedules")
    assert missing.code == 1
    assert "no such database" in missing.error_line()
    async with app:  # stores the schedule
        pass
    found = listing(tmp_path)
    assert found["id"] == "hourly"
    assert found["workflow"] == "hourly_report"
    assert found["every_ms"] == 3_600_000
    assert found["timezone"] == "Europe/Paris"
    assert found["next_run"].endswith(":00:00Z")
    assert (found["paused"], found["orphaned"], found["last_run"]) == (False, False, None)

    paused = run(tmp_path, "schedules", "pause", "hourly")
    assert (paused.code, paused.out.strip()) == (0, "hourly: paused")
    assert listing(tmp_path)["paused"] is True
    assert listing(tmp_path)["next_run"] is None

    triggered = run(tmp_path, "schedules", "trigger", "hourly", "--json")
    assert triggered.code == 0, triggered.err
    instance = json.loads(triggered.out)["instance"]
    assert instance.startswith("hourly@")
    assert instance.endswith("Z")
    assert listing(tmp_path)["pending"] == 1  # this command does not have the schedule
    async with app:
        await app.run_until_idle()  # an engine that declares it starts the instance
        started = [i.id for i in (await app.list(workflow="hourly_report")).unwrap()]
        assert started == [instance]
        assert (await app.status(instance)).unwrap().status.tag == "Completed"  # type: ignore[union-attr]
    assert listing(tmp_path)["pending"] == 0
    assert listing(tmp_path)["last_run"] == instance.partition("@")[2]

    resumed = run(tmp_path, "schedules", "resume", "hourly", "--json")
    assert resumed.code == 0, resumed.err
    assert json.loads(resumed.out)["paused"] is False

    unknown = run(tmp_path, "schedules", "trigger", "weekly")
    assert unknown.code == 2
    assert unknown.error_line() == "no schedule with id 'weekly'"
    no_id = run(tmp_path, "schedules", "pause")
    assert no_id.code == 2
    assert "give both ACTION and ID" in no_id.error_line()
    bad = run(tmp_path, "schedules", "delete", "hourly")
    assert bad.code == 2
    assert "invalid choice" in bad.error_line()
