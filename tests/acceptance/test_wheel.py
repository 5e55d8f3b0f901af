"""The wheel as a user gets it: built, installed in a fresh virtual environment, typed.

The wheel is built and installed once per test session (a few seconds with pip's
cache); every test here then uses that environment, outside any checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("memory", "sqlite", "postgres")

USER_APP = """
from typing import reveal_type

from returns.result import Result

import durably


@durably.step(retry=durably.Retry(3))
async def charge(order_id: str) -> int:
    return len(order_id)


@durably.workflow
async def checkout(order_id: str) -> str:
    cents = await charge(order_id)
    reveal_type(cents)
    label = await durably.step("label", lambda: f"{order_id}:{cents}")
    reveal_type(label)
    return label


async def main() -> None:
    async with durably.Engine([checkout], backend="memory://") as engine:
        started = await engine.start(checkout, "o-1", id="o-1")
        reveal_type(started)
        reveal_type(checkout)
        reveal_type(charge)
        outcome: Result[object, durably.DurablyError] = await engine.result("o-1")
        reveal_type(outcome)
        ran = await engine.run(checkout, "o-2")
        reveal_type(ran)
"""

REVEALED = [
    "int",
    "str",
    "returns.result.Result[durably.services.types.StartResult, "
    "durably.domain.errors.OrchestratorError]",
    "durably.services.definition.WorkflowDefinition[str, str]",
    "def (order_id: str) -> typing.Awaitable[int]",
    "returns.result.Result[object, durably.domain.errors.DurablyError]",
    "returns.result.Result[str, durably.domain.errors.DurablyError]",
]

APP = """
import durably


@durably.workflow
async def greet(name: str) -> str:
    return await durably.step("hello", lambda: f"hello {name}")


workflows = [greet]
"""


@attrs.frozen
class Installed:
    """The built wheel and the fresh environment it is installed in."""

    wheel: Path
    python: Path
    script: Path

    def env(self) -> dict[str, str]:
        """The environment of a user's shell: no durably settings, nothing of the checkout."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("DURABLY_", "PYTHON"))}
        return {**keep, "VIRTUAL_ENV": str(self.python.parent.parent)}


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    build = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(dist)]
    subprocess.run(build, check=True, timeout=600, capture_output=True)
    (wheel,) = dist.glob("durably-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "-q", str(wheel)]
    subprocess.run(install, check=True, timeout=600, capture_output=True)
    return Installed(wheel, python, venv / "bin" / "durably")


def run(installed: Installed, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``durably ARGV`` of the installed wheel, in ``cwd``."""
    return subprocess.run(
        [str(installed.script), *argv],
        cwd=cwd,
        env=installed.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_wheel_ships_the_typing_marker_and_the_profiles(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert "durably/py.typed" in names
    for name in PROFILES:
        assert f"durably/profiles/{name}.yaml" in names


def test_mypy_strict_sees_the_types_of_the_installed_package(
    installed: Installed, tmp_path: Path
) -> None:
    (tmp_path / "user_app.py").write_text(USER_APP, encoding="utf-8")
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--python-executable",
            str(installed.python),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "user_app.py",
        ],
        cwd=tmp_path,  # no configuration of the checkout applies
        env=installed.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output
    assert "untyped" not in output.lower(), output  # no "Untyped decorator", no import-untyped
    revealed = [
        line.split('Revealed type is "', 1)[1].rstrip('"')
        for line in output.splitlines()
        if "Revealed type is" in line
    ]
    assert revealed == REVEALED, output
    assert all(kind != "Any" for kind in revealed)


def test_a_bare_profile_name_works_outside_a_checkout(installed: Installed, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    memory = run(installed, tmp_path, "--profile", "memory", "list")
    assert memory.returncode == 0, memory.stderr
    assert memory.stdout.strip() == "no instances"
    started = run(
        installed, tmp_path, "start", "greet", "--input", '"Ada"', "--id", "g-1",
        "--app", "app:workflows", "--profile", "sqlite",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == '"hello Ada"'
    assert (tmp_path / "durably.db").exists()  # the shipped profile's sqlite:///durably.db
    listed = run(installed, tmp_path, "list", "--profile", "sqlite")
    assert listed.returncode == 0, listed.stderr
    assert "g-1" in listed.stdout


def test_a_profile_path_still_works_and_an_unknown_name_lists_the_shipped_ones(
    installed: Installed, tmp_path: Path
) -> None:
    (tmp_path / "mine.yaml").write_text("backend:\n  url: memory://\n", encoding="utf-8")
    by_path = run(installed, tmp_path, "list", "--profile", "./mine.yaml")
    assert by_path.returncode == 0, by_path.stderr
    assert by_path.stdout.strip() == "no instances"
    unknown = run(installed, tmp_path, "list", "--profile", "mysql")
    assert unknown.returncode == 2
    assert "no profile named 'mysql'" in unknown.stderr
    assert "memory, sqlite, postgres" in unknown.stderr
