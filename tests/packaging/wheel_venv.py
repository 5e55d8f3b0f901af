"""A fresh virtual environment where durably is installed from a wheel built from this tree.

Built once per test session (``wheel_venv``, session-scoped, in ``conftest.py``) and shared
by the tests that check the package as users install it: not editable, no ``src/`` on the
path, its dependencies and entry points as the wheel declares them. A test that needs more
tools installs them with ``WheelVenv.install``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest

__all__ = ["ROOT", "WheelVenv", "build_wheel_venv", "wheel_venv"]

ROOT = Path(__file__).resolve().parents[2]

TEST_TOOLS = ("pytest>=8,<10", "pytest-asyncio>=1.0,<2")
"""What the plugin's users have beside durably (the bounds of the dev extra)."""

PIP_TIMEOUT_S = 600


def _run(argv: Sequence[str], *, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(argv),
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _clean_env(bin_dir: Path | None = None) -> dict[str, str]:
    """Our environment without what would let this checkout or its venv leak in."""
    dropped = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "DURABLY_", "PYTEST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env["PYTHONNOUSERSITE"] = "1"  # nothing from ~/.local either
    if bin_dir is not None:
        env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
        env["VIRTUAL_ENV"] = str(bin_dir.parent)
    return env


@attrs.frozen
class WheelVenv:
    """A virtual environment with durably installed from ``wheel``."""

    root: Path
    wheel: Path

    @property
    def bin(self) -> Path:
        """Its scripts (``python``, ``pytest``, ``durably``)."""
        return self.root / "bin"

    @property
    def python(self) -> Path:
        """Its interpreter."""
        return self.bin / "python"

    def install(self, *requirements: str) -> None:
        """Install more packages into it (with this interpreter's pip)."""
        pip = [sys.executable, "-m", "pip", "--python", str(self.python)]
        _run([*pip, "install", "-q", *requirements], cwd=self.root, timeout=PIP_TIMEOUT_S)

    def run(self, *argv: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a command of the venv (``python``, ``pytest``...) in ``cwd``; never raises on
        a non-zero exit (look at ``returncode``)."""
        return subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]],
            cwd=cwd,
            env=_clean_env(self.bin),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def build_wheel_venv(directory: Path, requirements: Sequence[str] = TEST_TOOLS) -> WheelVenv:
    """Build the wheel of this tree into ``directory``, make a venv there and install the
    wheel (with its dependencies) and ``requirements`` into it."""
    wheels = directory / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        cwd=directory,
        timeout=PIP_TIMEOUT_S,
    )
    (wheel,) = wheels.glob("durably-*.whl")
    root = directory / "venv"
    # No pip inside: this interpreter's pip installs into it (``pip --python``), faster.
    _run([sys.executable, "-m", "venv", "--without-pip", str(root)], cwd=directory, timeout=120)
    venv = WheelVenv(root, wheel)
    venv.install(str(wheel), *requirements)
    return venv


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> WheelVenv:
    """The session's venv with durably installed from a freshly built wheel."""
    return build_wheel_venv(tmp_path_factory.mktemp("wheel-venv"))
