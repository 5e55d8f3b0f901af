"""Running the installed ``durably`` command in a subprocess, as a user's shell would."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs

__all__ = ["Ran", "durably", "script", "without_file_permission_override"]

_PR_CAPBSET_DROP = 24
# CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER: what lets root ignore file modes.
_FILE_CAPABILITIES = (1, 2, 3)


@attrs.frozen
class Ran:
    """What one ``durably`` process did."""

    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.out + self.err

    def error_line(self) -> str:
        """The one ``durably: error:`` line of a failed run (checked to be alone)."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("durably: error: "), self.err
        return lines[0].removeprefix("durably: error: ")


def script() -> str:
    """The installed ``durably`` console script, beside this interpreter."""
    installed = Path(sys.executable).parent / "durably"
    assert installed.exists(), f"{installed} is not installed (pip install -e .)"
    return str(installed)


def durably(
    *argv: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
    timeout: float = 60,
) -> Ran:
    """Run ``durably ARGV`` in ``cwd`` with no ``DURABLY_*`` setting but those of ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DURABLY_")}
    done = subprocess.run(
        [script(), *argv],
        cwd=cwd,
        env={**clean, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=preexec,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def without_file_permission_override() -> None:
    """In the child, before ``exec``: drop what lets root write a read-only file, so
    that file modes hold for the test whoever runs it (a no-op for other users)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in _FILE_CAPABILITIES:
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
