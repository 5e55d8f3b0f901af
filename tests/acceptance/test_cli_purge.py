"""``durably purge`` says what it purges, and a purged instance's result says it was purged.

``purge`` needs ``--before AGE`` or ``--all`` (nothing is purged by a bare ``purge``),
``--dry-run`` lists what would go and deletes nothing; afterwards ``Engine.result`` of a
purged instance is ``InstancePurgedError`` with its final status, never ``Success(None)``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import durably
from durably.domain.status import Cancelled, Completed, Failed
from durably.engine import Engine
from tests.acceptance.cli_process import Ran
from tests.acceptance.cli_process import durably as run_durably

APP = """
import durably


@durably.workflow
async def greet(name: str) -> str:
    return await durably.step("hello", lambda: f"hello {name}")


@durably.workflow
async def napper(name: str) -> str:
    await durably.sleep("1 hour")
    return name


workflows = [greet, napper]
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "purge_app.py").write_text(APP, encoding="utf-8")
    for argv in (["greet", "--input", '"Ada"', "--id", "done-1"], ["napper", "--input", '"Bo"']):
        started = cli(tmp_path, "start", *argv, "--app", "purge_app:workflows")
        assert started.code == 0, started.err
    return tmp_path


def cli(folder: Path, *argv: str) -> Ran:
    return run_durably(*argv, cwd=folder, env={"DURABLY_BACKEND": "sqlite:///purge.db"})


def steps_of(folder: Path, instance_id: str) -> str:
    shown = cli(folder, "show", instance_id)
    assert shown.code == 0, shown.err
    return shown.out


def test_purge_without_before_or_all_is_a_usage_error_and_purges_nothing(folder: Path) -> None:
    ran = cli(folder, "purge")
    assert ran.code == 2
    line = ran.error_line()
    assert "--before" in line
    assert "--all" in line
    assert ran.out == ""
    assert "hello" in steps_of(folder, "done-1")


def test_before_and_all_together_are_refused(folder: Path) -> None:
    ran = cli(folder, "purge", "--all", "--before", "1d")
    assert ran.code == 2
    assert "not allowed with" in ran.error_line()


def test_a_dry_run_lists_what_would_go_and_deletes_nothing(folder: Path) -> None:
    dry = cli(folder, "purge", "--all", "--dry-run")
    assert dry.code == 0, dry.err
    lines = dry.out.splitlines()
    assert lines[0] == "would purge 1 instance (--dry-run: nothing was deleted)"
    assert any("done-1" in line and "Completed" in line for line in lines)
    assert "napper" not in dry.out  # paused: not finished, not purgeable
    assert "hello" in steps_of(folder, "done-1")
    recent = cli(folder, "purge", "--before", "1h", "--dry-run")
    assert recent.code == 0, recent.err
    assert recent.out.strip() == "would purge 0 instances (--dry-run: nothing was deleted)"


def test_purge_all_then_the_dry_run_finds_nothing_left(folder: Path) -> None:
    assert cli(folder, "purge", "--before", "1h").out.strip() == "purged 0 instances"
    purged = cli(folder, "purge", "--all")
    assert purged.code == 0, purged.err
    assert purged.out.strip() == "purged 1 instance"
    assert "hello" not in steps_of(folder, "done-1")
    again = cli(folder, "purge", "--all", "--dry-run")
    assert again.out.strip() == "would purge 0 instances (--dry-run: nothing was deleted)"


# -- Engine.result of a purged instance --------------------------------------------------------


@durably.workflow
async def returns_none(name: str) -> None:
    """A workflow whose output really is None."""
    await durably.step("noop", lambda: name)


@durably.workflow
async def fails(name: str) -> str:
    """Fails at once."""
    raise ValueError(f"no {name}")


@durably.workflow
async def waits(name: str) -> str:
    """Sleeps (to be cancelled meanwhile)."""
    await durably.sleep("1 hour")
    return name


async def test_the_result_of_a_purged_instance_says_it_was_purged(tmp_path: Path) -> None:
    backend = f"sqlite:///{tmp_path / 'result.db'}"
    async with Engine([returns_none, fails, waits], backend=backend) as engine:
        (await engine.start(returns_none, "a", id="none-1")).unwrap()
        (await engine.start(returns_none, "b", id="none-2")).unwrap()
        (await engine.start(fails, "c", id="failed-1")).unwrap()
        (await engine.start(waits, "d", id="cancelled-1")).unwrap()
        (await engine.cancel("cancelled-1", reason="not needed")).unwrap()
        # Not purged: a workflow that returned None is a success with None.
        assert (await engine.result("none-2")).unwrap() is None
        assert (await engine.purge()).unwrap() == 4
        for instance_id, final in [
            ("none-1", Completed),
            ("failed-1", Failed),
            ("cancelled-1", Cancelled),
        ]:
            outcome = await engine.result(instance_id, timeout="5s")
            error = outcome.failure()
            assert isinstance(error, durably.InstancePurgedError), outcome
            assert error.workflow_id == instance_id
            assert isinstance(error.status, final)  # the final status is kept
            assert "purged" in str(error)
        failed = (await engine.result("failed-1")).failure()
        assert isinstance(failed, durably.InstancePurgedError)
        assert isinstance(failed.status, Failed)
        assert failed.status.error.message == "no c"
        ran = await engine.run(returns_none, "a", id="none-1")  # run of a purged id too
        assert isinstance(ran.failure(), durably.InstancePurgedError)
