"""The pytest plugin as users meet it: a pytest run of its own, in each asyncio mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

WORKFLOW = """
import durably


@durably.workflow
async def trial(user: str) -> str:
    await durably.sleep("14 days")
    return await durably.step("expire", lambda: f"trial of {user} ended")
"""

AUTO_TESTS = (
    WORKFLOW
    + """

ENGINES = []


async def test_a_trial_ends(durably_engine, durably_clock):
    engine = await durably_engine([trial])
    await engine.start(trial, "ada", id="ada")
    assert (await engine.result("ada")).unwrap() == "trial of ada ended"


async def test_fails_with_an_engine_open(durably_engine):
    ENGINES.append(await durably_engine([trial]))
    assert False, "this test fails on purpose"


async def test_the_failed_tests_engine_was_closed():
    (engine,) = ENGINES
    try:
        await engine.queue(trial, "bob")
    except RuntimeError as e:
        assert "not open" in str(e)
    else:
        raise AssertionError("the engine of the failed test is still open")
"""
)

STRICT_TESTS = (
    WORKFLOW
    + """

import pytest


@pytest.mark.asyncio
async def test_a_trial_ends_in_strict_mode(durably_engine, durably_clock):
    engine = await durably_engine([trial])
    await engine.start(trial, "ada", id="ada")
    await durably_clock.advance("14 days")
    assert (await engine.status("ada")).unwrap().status.tag == "Completed"
"""
)


def _pytest(directory: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _project(directory: Path, mode: str, tests: str) -> Path:
    (directory / "pytest.ini").write_text(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n",
        encoding="utf-8",
    )
    (directory / "test_user.py").write_text(textwrap.dedent(tests), encoding="utf-8")
    return directory


def test_auto_mode_and_engines_closed_after_a_failed_test(tmp_path: Path) -> None:
    code, output = _pytest(_project(tmp_path, "auto", AUTO_TESTS))
    assert code == 1, output
    assert "1 failed, 2 passed" in output, output
    assert "this test fails on purpose" in output


def test_strict_mode(tmp_path: Path) -> None:
    code, output = _pytest(_project(tmp_path, "strict", STRICT_TESTS))
    assert code == 0, output
    assert "1 passed in" in output, output


def test_without_pytest_asyncio_the_plugin_loads_and_says_what_is_missing(
    tmp_path: Path,
) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "pytest_asyncio.py").write_text("raise ImportError('not installed')\n")
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            def test_the_clock_is_there(durably_clock):
                assert durably_clock.now() > 0


            def test_the_engine_needs_pytest_asyncio(durably_engine):
                pass
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    code, output = _pytest(tmp_path, "-p", "no:asyncio", env={"PYTHONPATH": str(shadow)})
    assert code == 1, output
    assert "1 passed, 1 error" in output, output
    assert "install pytest-asyncio" in output
