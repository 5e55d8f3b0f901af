"""Helpers shared by the integration tests and their child processes.

Everything here is synchronous on purpose: spawning, reading and killing child
processes, and inspecting the SQLite file directly (behind the engine's back).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO

__all__ = [
    "REPO_ROOT",
    "HERE",
    "ChildProcess",
    "append_line",
    "committed_steps",
    "db_url",
    "read_lines",
    "stranded_problems",
    "spawn",
    "step_counts",
    "wait_for_line",
]

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

TERMINAL = ("Completed", "Failed", "Cancelled")
WAITING = ("Queued", "Running", "Paused")


def db_url(path: Path) -> str:
    """The engine URL of an absolute database path (``sqlite:////abs/path.db``)."""
    return "sqlite:///" + str(path.resolve())


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line durably: one ``O_APPEND`` write, then fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_lines(path: Path) -> list[str]:
    """The complete lines of ``path`` (none when it does not exist)."""
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.strip()]


def step_counts(path: Path) -> Counter[tuple[int, int]]:
    """Side-file lines ``"<step index> <pid>"`` counted by (index, pid)."""
    counts: Counter[tuple[int, int]] = Counter()
    for line in read_lines(path):
        index, pid = line.split()
        counts[(int(index), int(pid))] += 1
    return counts


def _connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(db), timeout=10)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def committed_steps(db: Path, instance_id: str) -> set[str]:
    """The step keys whose result (their completion marker) is committed, read from the file."""
    conn = _connect(db)
    try:
        rows = conn.execute(
            "SELECT key FROM kv WHERE instance_id = ? AND key LIKE 'step:%:result'", (instance_id,)
        ).fetchall()
    finally:
        conn.close()
    return {str(r[0])[len("step:") : -len(":result")] for r in rows}


def stranded_problems(db: Path, *, allow_terminal_alarm: bool = False) -> list[str]:
    """Every instance that could never finish, or whose two status copies disagree.

    architecture.md, "Durability points": no instance in Pending, Queued without an
    alarm, or Running / Paused without an alarm (nobody would ever look at it again).
    """
    conn = _connect(db)
    try:
        rows = conn.execute(
            "SELECT i.id, i.status, a.due_at, kv.value FROM instances i"
            " LEFT JOIN alarms a ON a.instance_id = i.id"
            " LEFT JOIN kv ON kv.instance_id = i.id AND kv.key = 'workflow:status'"
        ).fetchall()
        orphans = conn.execute(
            "SELECT instance_id FROM alarms WHERE instance_id NOT IN (SELECT id FROM instances)"
        ).fetchall()
        kv_only = conn.execute(
            "SELECT DISTINCT instance_id FROM kv"
            " WHERE instance_id NOT IN (SELECT id FROM instances)"
        ).fetchall()
    finally:
        conn.close()
    problems: list[str] = []
    for iid, status, due_at, value in rows:
        stored = json.loads(value).get("tag") if value is not None else None
        if stored != status:
            problems.append(f"{iid}: instances.status={status} but workflow:status={stored}")
        if status == "Pending":
            problems.append(f"{iid}: stranded in Pending")
        if status in WAITING and due_at is None:
            problems.append(f"{iid}: {status} without an alarm")
        if status in TERMINAL and due_at is not None and not allow_terminal_alarm:
            problems.append(f"{iid}: {status} with an alarm at {due_at}")
    problems += [f"{r[0]}: alarm row without an instance" for r in orphans]
    problems += [f"{r[0]}: keys without an instances row" for r in kv_only]
    return problems


def wait_for_line(path: Path, line: str, timeout: float) -> None:
    """Wait until ``path`` holds the line ``line``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and line in path.read_text().splitlines():
            return
        time.sleep(0.002)
    raise AssertionError(f"{line!r} never appeared in {path}")


class ChildProcess:
    """A child Python process running one of the scripts of this folder."""

    def __init__(self, script: str, args: list[str], log_dir: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        self.stderr_path = log_dir / f"{Path(script).stem}-{time.monotonic_ns()}.stderr"
        self._stderr: IO[bytes] = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=True,
        )
        self.lines: list[str] = []

    @property
    def pid(self) -> int:
        """The child's pid."""
        return self.proc.pid

    def stderr(self) -> str:
        """What the child wrote to stderr so far."""
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def expect(self, word: str, timeout: float = 30.0) -> str:
        """Wait for a stdout line starting with ``word``; returns the line."""
        stdout = self.proc.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"child {self.pid} did not say {word!r} in {timeout}s; "
                    f"stdout {self.lines}, stderr:\n{self.stderr()}"
                )
            ready, _, _ = select.select([stdout], [], [], left)
            if not ready:
                continue
            line = stdout.readline()
            if not line:
                raise AssertionError(
                    f"child {self.pid} exited ({self.proc.wait()}) before saying {word!r}; "
                    f"stdout {self.lines}, stderr:\n{self.stderr()}"
                )
            self.lines.append(line.rstrip("\n"))
            if line.startswith(word):
                return line.rstrip("\n")

    def send(self, line: str) -> None:
        """Write one line to the child's stdin."""
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write(line + "\n")
        stdin.flush()

    def kill(self) -> int:
        """SIGKILL the child and reap it; returns its exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(timeout=10)
        self.close()
        return code

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the child."""
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        """Wait for the child to exit on its own; returns its exit code."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"child {self.pid} did not exit within {timeout}s; stderr:\n{self.stderr()}"
            ) from None
        stdout = self.proc.stdout
        if stdout is not None:
            self.lines += [line.rstrip("\n") for line in stdout.read().splitlines()]
        self.close()
        return code

    def close(self) -> None:
        """Release the pipes and the stderr file."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()
        if not self._stderr.closed:
            self._stderr.close()


def spawn(script: str, args: list[str], log_dir: Path) -> ChildProcess:
    """Start ``script`` (a file of this folder) with ``args`` in a new Python process."""
    return ChildProcess(script, args, log_dir)
