"""Code blocks of the documentation, and how the doc tests run them.

Conventions (written down in ``docs/index.md``, section "About the examples"):

- A ```` ```python ```` block is a complete script: it runs in a fresh module, in a
  temporary working directory holding a copy of ``containers/``; async examples call
  ``asyncio.run(main())`` themselves. Top-level ``test_*`` functions a block defines are
  then called (coroutines through ``asyncio.run``), as pytest would call them.
- ``<!-- file: NAME.py -->`` before a python block: the CLI sessions of that page find
  the block saved as ``NAME.py`` in their working directory (their ``--app``).
- ``<!-- not-run: reason -->`` before a block: the tests skip it (few, with a reason).
- ``<!-- pytest: test_NAME.py -->`` before a python block: the block is a test file of a
  user's project; the page's test files (with its ``file:`` blocks, such as a
  ``pyproject.toml``) are written to a directory and run by pytest there, with the
  plugin's fixtures (``tests/docs/test_testing_page.py``), not as a script.
- A ```` ```console ```` block is a shell session that the tests replay for real:
  ``$ `` lines are commands (``export`` sets a variable for the rest of the page,
  ``durably`` is the installed command, a trailing comment ``# exit N ...`` gives the
  expected exit status, 0 otherwise); the lines after a command are its output (stdout and stderr),
  compared by shape: digits, durations and UUIDs may differ, table borders and spacing
  are ignored. A ``^C`` line interrupts the command (SIGINT) once the lines before it
  have appeared. ```` ```sh ```` blocks are shown, never run.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import attrs

__all__ = [
    "ROOT",
    "DOCS",
    "Block",
    "Command",
    "blocks_of",
    "documented_files",
    "python_blocks",
    "console_commands",
    "shape",
    "durably_command",
    "run_command",
    "session_env",
]

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(?P<fence>```+)(?P<lang>[\w-]*)\s*$")
_MARKER = re.compile(r"^<!--\s*(?P<kind>not-run|file|pytest):\s*(?P<value>.*?)\s*-->$")
_EXIT = re.compile(r"#\s*exit\s+(\d+)\b")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DURATION = re.compile(r"\b\d+(?:\.\d+)?(?:ms|s)\b|\b\d+[mhd]\d+[smh]\b")
_BOX = re.compile(r"[\u2500-\u257f]")
INTERRUPT = "^C"


@attrs.frozen
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int
    """The line of the block's first code line (1-based)."""
    lang: str
    text: str
    not_run: str | None = None
    """The reason of a ``<!-- not-run: reason -->`` marker."""
    file_name: str | None = None
    """The name of a ``<!-- file: NAME -->`` marker."""
    pytest_file: str | None = None
    """The name of a ``<!-- pytest: NAME -->`` marker: a test file run by pytest."""

    @property
    def where(self) -> str:
        """``docs/concepts.md:42``."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documented_files() -> list[Path]:
    """Every page of ``docs/``, and the README."""
    return [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]


def blocks_of(path: Path) -> list[Block]:
    """The fenced blocks of ``path``, with the marker that precedes each (if any)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening["fence"]
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        not_run = file_name = pytest_file = None
        before = i - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        marker = _MARKER.match(lines[before].strip()) if before >= 0 else None
        if marker is not None:
            if marker["kind"] == "not-run":
                not_run = marker["value"]
            elif marker["kind"] == "pytest":
                pytest_file = marker["value"]
            else:
                file_name = marker["value"]
        text = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(path, i + 2, opening["lang"], text, not_run, file_name, pytest_file))
        i = end + 1
    return found


def python_blocks() -> list[Block]:
    """Every python block of the documentation."""
    return [b for path in documented_files() for b in blocks_of(path) if b.lang == "python"]


@attrs.frozen
class Command:
    """One ``$ `` line of a console block and the output documented under it."""

    block: Block
    line: str
    expected: tuple[str, ...]
    exit_code: int

    @property
    def argv(self) -> list[str]:
        """The command's words (without the trailing comment)."""
        return shlex.split(self.line, comments=True)

    @property
    def interrupted(self) -> bool:
        """Whether the session interrupts it (a ``^C`` line)."""
        return INTERRUPT in self.expected


def console_commands(path: Path) -> list[Command]:
    """The commands of the page's console blocks, in order (not-run blocks left out)."""
    commands: list[Command] = []
    for block in blocks_of(path):
        if block.lang != "console" or block.not_run is not None:
            continue
        current: str | None = None
        output: list[str] = []
        for raw in [*block.text.splitlines(), "$ "]:
            if raw.startswith("$ "):
                if current is not None:
                    code = _EXIT.search(current)
                    exit_code = int(code[1]) if code else 0
                    commands.append(Command(block, current, tuple(output), exit_code))
                current, output = raw[2:].strip() or None, []
            elif current is not None:
                output.append(raw)
    return commands


def shape(lines: Sequence[str] | str) -> list[str]:
    """Lines as the doc tests compare them: digits, durations and UUIDs as placeholders,
    table borders and runs of spaces as one space, blank lines dropped."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    shaped: list[str] = []
    for line in lines:
        line = _BOX.sub(" ", line)
        line = _UUID.sub("<uuid>", line)
        line = _DURATION.sub("<duration>", line)
        line = re.sub(r"\d+", "<n>", line)
        line = " ".join(line.split())
        if line:
            shaped.append(line)
    return shaped


def durably_command() -> Path:
    """The installed ``durably`` script beside this interpreter."""
    script = Path(sys.executable).parent / "durably"
    assert script.exists(), f"{script} is missing: pip install -e '.[dev]'"
    return script


def _reader(stream: Iterator[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def run_command(
    command: Command,
    cwd: Path,
    env: dict[str, str],
    *,
    ready: Callable[[list[str]], bool] | None = None,
    timeout_s: float = 60,
) -> tuple[int, list[str]]:
    """Run one documented command; returns its exit status and output lines.

    An interrupted command gets SIGINT once ``ready(output so far)`` holds (by default:
    once as many lines as the documentation shows before ``^C`` have appeared).
    """
    argv = command.argv
    if argv[0] == "durably":
        argv = [str(durably_command()), *argv[1:]]
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    cut = command.expected.index(INTERRUPT) if command.interrupted else 0
    before = len(shape(command.expected[:cut]))  # lines shown before the ^C
    is_ready = ready if ready is not None else (lambda seen: len(shape(seen)) >= before)
    output: list[str] = []
    deadline = time.monotonic() + timeout_s
    interrupted = not command.interrupted
    try:
        while True:
            if not interrupted and is_ready(output):
                process.send_signal(signal.SIGINT)
                interrupted = True
            left = deadline - time.monotonic()
            assert left > 0, f"{command.line!r} did not finish in {timeout_s} s: {output}"
            try:
                line = lines.get(timeout=min(left, 0.05))
            except queue.Empty:
                continue
            if line is None:
                break
            output.append(line)
        return process.wait(timeout=max(1.0, deadline - time.monotonic())), output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def session_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a replayed session: ours, without any ``DURABLY_`` variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLY_")}
    env.pop("COLUMNS", None)
    return {**env, **(extra or {})}
