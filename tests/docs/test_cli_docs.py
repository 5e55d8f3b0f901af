"""The console sessions of ``docs/cli.md`` and ``docs/quickstart.md``, replayed for real.

Each page's sessions run in order in one temporary directory, with the page's
``<!-- file: NAME -->`` blocks saved there (the app), through the installed ``durably``
command on a SQLite file; each command's exit status and output shape must match the
page (see ``blocks.py`` for the conventions).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.docs.blocks import (
    DOCS,
    INTERRUPT,
    Command,
    blocks_of,
    console_commands,
    durably_command,
    run_command,
    session_env,
    shape,
)


def _prepare(page: Path, directory: Path) -> None:
    """Save the page's ``file:`` blocks in ``directory``."""
    files = [block for block in blocks_of(page) if block.file_name]
    assert files, f"{page.name} names no app file (<!-- file: NAME.py -->)"
    for block in files:
        assert block.file_name is not None
        (directory / block.file_name).write_text(block.text, encoding="utf-8")


def _check(command: Command, code: int, output: list[str]) -> None:
    where = f"{command.block.where}: $ {command.line}"
    expected = [line for line in command.expected if line.strip() != INTERRUPT]
    shown = "\n".join(output)
    documented = command.exit_code
    assert code == documented, f"{where}\nexit {code}, documented {documented}\n{shown}"
    assert shape(output) == shape(expected), (
        f"{where}\noutput differs from the documentation:\n{shown}\n--- documented:\n"
        + "\n".join(expected)
    )


def _replay(
    page: Path,
    directory: Path,
    ready: Callable[[Command], Callable[[list[str]], bool] | None] = lambda _: None,
) -> int:
    """Replay every command of ``page``; returns how many ran."""
    _prepare(page, directory)
    env = session_env()
    ran = 0
    for command in console_commands(page):
        if command.argv[0] == "export":
            name, _, value = command.argv[1].partition("=")
            env[name] = value
            continue
        assert command.argv[0] == "durably", f"{command.block.where}: only durably commands run"
        code, output = run_command(command, directory, env, ready=ready(command))
        _check(command, code, output)
        ran += 1
    return ran


def test_the_cli_page_session(tmp_path: Path) -> None:
    page = DOCS / "cli.md"
    ran = _replay(page, tmp_path)
    documented = {c.argv[1] for c in console_commands(page) if c.argv[0] == "durably"}
    assert documented >= {
        "start", "status", "show", "list", "cancel", "purge", "worker", "send", "get-event",
        "queue", "queues", "schedules",
    }  # fmt: skip
    assert ran >= 25
    assert not (DOCS / "shop.db").exists()  # the session wrote in its own directory


def _paused(directory: Path) -> Callable[[list[str]], bool]:
    """Ready when instance ``greet-ada`` sleeps (the quickstart's moment to press Ctrl-C)."""

    def ready(_: list[str]) -> bool:
        status = subprocess.run(
            [str(durably_command()), "status", "greet-ada"],
            cwd=directory,
            env=session_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return "Paused (sleep)" in status.stdout

    return ready


def test_the_quickstart_session_resumes_after_ctrl_c(tmp_path: Path) -> None:
    page = DOCS / "quickstart.md"
    commands = console_commands(page)
    assert commands[0].interrupted, "the quickstart starts by interrupting a sleeping workflow"
    assert [c.argv[1] for c in commands] == ["start", "show", "start", "show"]
    assert commands[2].argv == commands[0].argv, "the second run is the same command"

    def ready(command: Command) -> Callable[[list[str]], bool] | None:
        # Interrupt only once the workflow sleeps: the first step is committed by then.
        return _paused(tmp_path) if command.interrupted else None

    assert _replay(page, tmp_path, ready) == 4
    assert (tmp_path / "durably.db").exists()  # the default store, in the working directory
