"""Child processes: every repetition of every engine runs in a fresh one (``child.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from scenarios.common import Sizes, Target

CHILD = Path(__file__).resolve().parent.parent / "child.py"
RESULT = "RESULT "
TREES: dict[str, str] = {}
"""Other source trees of durably by label (``compare.py --tree LABEL=PATH``): engine
``durably@LABEL`` is ``durably`` run with ``PYTHONPATH=PATH/src``, so that the same
scenario measures two versions side by side."""


class ChildFailed(RuntimeError):
    """A child process ended without a result."""


def spawn(
    scenario: str,
    engine: str,
    target: Target,
    sizes: Sizes,
    phase: str = "run",
) -> subprocess.Popen[str]:
    """Start one child: ``child.py scenario engine phase target sizes``."""
    env = dict(os.environ, BENCH_SIDE_LOG=target.side_log, PYTHONUNBUFFERED="1")
    engine, _, label = engine.partition("@")
    if label:
        source = os.path.join(TREES[label], "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    # Lives as long as the child; read back only when the child fails.
    stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            str(CHILD),
            scenario,
            engine,
            phase,
            json.dumps(target.to_json()),
            json.dumps(sizes.to_json()),
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
    )
    proc.stderr_file = stderr  # type: ignore[attr-defined]
    return proc


def collect(proc: subprocess.Popen[str], timeout_s: float = 1_800.0) -> dict[str, Any]:
    """Wait for a child and return the JSON it printed after ``RESULT``."""
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise ChildFailed(f"child {proc.args!r} did not finish in {timeout_s}s") from None
    for line in reversed(out.splitlines()):
        if line.startswith(RESULT):
            return dict(json.loads(line[len(RESULT) :]))
    stderr = proc.stderr_file  # type: ignore[attr-defined]
    stderr.seek(0)
    tail = stderr.read()[-3000:]
    raise ChildFailed(f"child exited {proc.returncode} without a result:\n{out[-1000:]}\n{tail}")


def run_child(
    scenario: str, engine: str, target: Target, sizes: Sizes, phase: str = "run"
) -> dict[str, Any]:
    """Run one child to its end; its result."""
    return collect(spawn(scenario, engine, target, sizes, phase))
