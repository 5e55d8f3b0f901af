"""pytest finds durably's plugin where durably is installed from its wheel (not editable)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from tests.packaging.wheel_venv import WheelVenv

USER_TESTS = """
import durably


@durably.workflow
async def trial(user: str) -> str:
    await durably.sleep("30 days")
    return await durably.step("expire", lambda: f"trial of {user} ended")


def test_durably_comes_from_the_wheel():
    assert "site-packages" in durably.__file__, durably.__file__


async def test_the_fixtures_need_no_import(durably_engine, durably_clock):
    start = durably_clock.now()
    engine = await durably_engine([trial])
    await engine.start(trial, "ada", id="ada")
    await durably_clock.advance("30 days")
    assert (await engine.result("ada")).unwrap() == "trial of ada ended"
    assert durably_clock.now() == start + 30 * 86_400_000
"""


def test_pytest_finds_the_plugin_of_the_installed_wheel(
    wheel_venv: WheelVenv, tmp_path: Path
) -> None:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n",
        encoding="utf-8",
    )
    (tmp_path / "test_trial.py").write_text(textwrap.dedent(USER_TESTS), encoding="utf-8")
    done = wheel_venv.run("pytest", "-p", "no:cacheprovider", "-v", cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "2 passed" in output, output
    assert re.search(r"^plugins:.*\bdurably-\d", output, re.MULTILINE), output  # by its entry point
    listed = wheel_venv.run("python", "-m", "pytest", "--fixtures", "-q", cwd=tmp_path)
    assert "durably_engine" in listed.stdout, listed.stdout + listed.stderr
    assert "durably_clock" in listed.stdout
