"""The ``durably`` command end to end: in-process through ``main``, and as a real script."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from durably.cli import main
from durably.engine import Engine

APP = """
import asyncio

import durably
from durably.engine import Engine

tries = {"flaky": 0}


@durably.workflow
async def greet(name: str) -> dict:
    greeting = await durably.step("hello", lambda: asyncio.sleep(0, f"hello {name}"))
    return {"greeting": greeting}


@durably.workflow
async def napper(nap: str) -> str:
    await durably.step("before", lambda: asyncio.sleep(0, 1))
    await durably.sleep(nap)
    await durably.step("after", lambda: asyncio.sleep(0, 2))
    return "rested"


async def fails_once() -> int:
    tries["flaky"] += 1
    if tries["flaky"] == 1:
        raise ConnectionError("first try fails")
    return 7


@durably.workflow
async def flaky_flow(x: int) -> int:
    value = await durably.step("flaky", fails_once, retry=durably.Retry(3, delay="20ms"))
    return x + value


@durably.workflow
async def broken(x: int) -> int:
    await durably.step("fine", lambda: asyncio.sleep(0, x))
    raise ValueError(f"cannot handle {x}")


workflows = [greet, napper, flaky_flow, broken]
engine = Engine(workflows, backend="memory://")
"""


@attrs.frozen
class Run:
    """What one ``durably`` invocation did."""

    code: int
    out: str
    err: str


@attrs.frozen
class Cli:
    """Calls ``main`` over one app module and one SQLite file."""

    module: str
    database: Path
    capsys: pytest.CaptureFixture[str]

    @property
    def app(self) -> str:
        return f"{self.module}:workflows"

    @property
    def backend(self) -> str:
        return f"sqlite:///{self.database}"

    def bare(self, *argv: str) -> Run:
        """Run ``durably ARGV`` exactly as given."""
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return Run(code, captured.out, captured.err)

    def __call__(self, *argv: str) -> Run:
        """Run ``durably ARGV --app ... --backend ...``."""
        return self.bare(*argv, "--app", self.app, "--backend", self.backend)

    def engine(self) -> Engine:
        """An engine over the same file, for setting up what the CLI cannot."""
        module = sys.modules.get(self.module) or __import__(self.module)
        return Engine(module.workflows, backend=self.backend)


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    name = f"cli_app_{uuid.uuid4().hex[:8]}"  # a fresh module (and counters) per test
    (tmp_path / f"{name}.py").write_text(APP, encoding="utf-8")
    yield tmp_path, name
    sys.modules.pop(name, None)


@pytest.fixture
def cli(
    app_dir: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    directory, name = app_dir
    monkeypatch.syspath_prepend(str(directory))
    monkeypatch.delenv("DURABLY_APP", raising=False)
    monkeypatch.delenv("DURABLY_BACKEND", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return Cli(name, directory / "cli.db", capsys)


def one_error_line(run: Run) -> str:
    """The error of a failed run, checked to be one ``durably: error:`` line."""
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("durably: error: ")
    return lines[0]


def table_row(text: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is ``first_cell``."""
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{text}")


def timeline_rows(text: str, kind: str, name: str) -> list[list[str]]:
    """The cells of the timeline rows of ``durably show`` of that kind and name."""
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells[:2] == [kind, name]:
            rows.append(cells)
    assert rows, f"no {kind} row {name!r} in:\n{text}"
    return rows


# -- start ----------------------------------------------------------------------------------


def test_start_prints_the_output_of_a_completed_workflow(cli: Cli) -> None:
    run = cli("start", "greet", "--input", '"Ada"', "--id", "g-1")
    assert run.code == 0, run.err
    assert json.loads(run.out) == {"greeting": "hello Ada"}
    assert cli("status", "g-1").out.split()[:2] == ["g-1", "Completed"]


def test_start_without_wait_stops_at_the_first_pause(cli: Cli) -> None:
    run = cli("start", "napper", "--input", '"1 hour"', "--id", "nap-1")
    assert run.code == 0, run.err
    assert run.out.startswith("nap-1  Paused (sleep) until ")
    assert "durably worker" in run.out
    assert "Paused" in cli("status", "nap-1").out


def test_start_wait_runs_the_sleep_here_until_completed(cli: Cli) -> None:
    began = time.monotonic()
    run = cli("start", "napper", "--input", '"200ms"', "--id", "nap-2", "--wait")
    assert run.code == 0, run.err
    assert json.loads(run.out) == "rested"
    assert run.err.strip() == "nap-2: Completed"  # no spinner left behind off a terminal
    assert time.monotonic() - began >= 0.2  # it did sleep
    show = cli("show", "nap-2").out
    assert [row[2] for row in timeline_rows(show, "step", "before")] == ["1"]
    assert [row[2] for row in timeline_rows(show, "step", "after")] == ["1"]
    assert timeline_rows(show, "sleep", "sleep#1")[0][5] == "done"


def test_start_wait_of_a_failing_workflow_exits_1(cli: Cli) -> None:
    run = cli("start", "broken", "--input", "3", "--id", "b-1", "--wait")
    assert run.code == 1
    line = one_error_line(run)
    assert "b-1" in line
    assert "ValueError: cannot handle 3" in line
    assert run.out == ""
    assert "Failed: ValueError: cannot handle 3" in cli("status", "b-1").out


def test_start_generates_an_id_when_none_is_given(cli: Cli) -> None:
    run = cli("start", "greet", "--input", '"Bo"')
    assert run.code == 0
    generated = run.err.split(":")[0].strip()
    assert uuid.UUID(generated)  # a UUID, reported on stderr
    assert generated in cli("list").out


# -- queries ----------------------------------------------------------------------------------


def test_list_shows_instances_in_a_table_and_filters(cli: Cli) -> None:
    assert cli("start", "greet", "--input", '"A"', "--id", "l-1").code == 0
    assert cli("start", "broken", "--input", "1", "--id", "l-2").code == 1
    listed = cli("list")
    assert listed.code == 0
    assert table_row(listed.out, "l-1")[1:3] == ["greet", "Completed"]
    assert table_row(listed.out, "l-2")[1:3] == ["broken", "Failed"]
    completed = cli("list", "--status", "completed").out  # tags are case-insensitive
    assert "l-1" in completed
    assert "l-2" not in completed
    assert "l-1" not in cli("list", "--workflow", "broken").out
    assert len([line for line in cli("list", "--limit", "1").out.splitlines() if "l-" in line]) == 1


def test_show_has_a_timeline_with_the_attempt_that_succeeded(cli: Cli) -> None:
    run = cli("start", "flaky_flow", "--input", "1", "--id", "f-1", "--wait")
    assert run.code == 0, run.err
    assert json.loads(run.out) == 8
    show = cli("show", "f-1")
    assert show.code == 0
    assert show.out.startswith("f-1  Completed at ")
    failed, succeeded = timeline_rows(show.out, "step", "flaky")  # failed once, then succeeded
    assert (failed[2], failed[5]) == ("1", "ConnectionError: first try fails")
    assert (succeeded[2], succeeded[5]) == ("2", "ok")
    assert succeeded[3].startswith("20")  # a readable UTC time


def test_show_of_a_step_waiting_for_its_retry(cli: Cli) -> None:
    assert cli("start", "flaky_flow", "--input", "1", "--id", "f-2").code == 0
    show = cli("show", "f-2").out
    assert "Paused (retry of step 'flaky')" in show
    [row] = timeline_rows(show, "step", "flaky")
    assert row[5].startswith("ConnectionError: first try fails; retry ")  # in/overdue by 20ms


# -- cancel and purge ---------------------------------------------------------------------------


def test_cancel_a_queued_instance(cli: Cli) -> None:
    async def queue() -> None:
        async with cli.engine() as engine:
            queued = (await engine.queue("greet", "Q", id="q-1")).unwrap()
            assert not queued.completed

    asyncio.run(queue())
    assert "Queued" in cli("status", "q-1").out
    run = cli("cancel", "q-1", "--reason", "not needed")
    assert run.code == 0, run.err
    assert run.out.strip() == "q-1 cancelled (was Queued)"
    assert "Cancelled: not needed" in cli("status", "q-1").out
    again = cli("cancel", "q-1")
    assert again.code == 1
    assert "already ended" in one_error_line(again)


def test_purge_removes_the_steps_of_finished_instances(cli: Cli) -> None:
    assert cli("start", "greet", "--input", '"P"', "--id", "p-1").code == 0
    assert cli("start", "napper", "--input", '"1 hour"', "--id", "p-2").code == 0
    assert cli("purge", "--before", "1h").out.strip() == "purged 0 instances"
    run = cli("purge", "--all")
    assert run.code == 0
    assert run.out.strip() == "purged 1 instance"  # the paused one is not finished
    assert "hello" not in cli("show", "p-1").out
    assert "before" in cli("show", "p-2").out


# -- choosing the app and the store ---------------------------------------------------------------


def test_app_may_name_an_engine_and_env_vars_work(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURABLY_APP", f"{cli.module}:engine")
    monkeypatch.setenv("DURABLY_BACKEND", cli.backend)
    run = cli.bare("start", "greet", "--input", '"Env"', "--id", "e-1")
    assert run.code == 0, run.err
    assert json.loads(run.out) == {"greeting": "hello Env"}
    assert cli.database.exists()


def test_a_profile_chooses_the_store(cli: Cli, tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2] / "containers" / "sqlite.yaml"
    database = tmp_path / "profiled.db"
    text = source.read_text().replace("sqlite:///durably.db", f"sqlite:///{database}")
    profile = tmp_path / "profile.yaml"
    profile.write_text(text)
    run = cli.bare(
        "start", "greet", "--input", '"Pro"', "--app", cli.app, "--profile", str(profile)
    )
    assert run.code == 0, run.err
    assert database.exists()
    assert not cli.database.exists()


# -- errors: one line, exit 2 ----------------------------------------------------------------------


def test_invalid_input_json(cli: Cli) -> None:
    run = cli("start", "greet", "--input", "{not json")
    assert run.code == 2
    assert "--input is not valid JSON" in one_error_line(run)
    assert not cli.database.exists()  # refused before the store is touched


def test_input_of_the_wrong_type_is_refused_before_starting(cli: Cli) -> None:
    run = cli("start", "broken", "--input", '"three"', "--id", "t-1")
    assert run.code == 2
    line = one_error_line(run)
    assert "--input does not fit workflow 'broken': x: expected int" in line
    assert not cli.database.exists()  # refused before the store is created


def test_unknown_workflow_lists_the_available_ones(cli: Cli) -> None:
    run = cli("start", "nope", "--input", "1")
    assert run.code == 2
    line = one_error_line(run)
    assert "'nope' not found" in line
    assert "greet, napper, flaky_flow, broken" in line


@pytest.mark.parametrize("command", ["status", "show", "cancel"])
def test_unknown_id(cli: Cli, command: str) -> None:
    assert cli("start", "greet", "--input", '"Ada"', "--id", "known").code == 0
    run = cli(command, "ghost")
    assert run.code == 2
    assert "no workflow instance with id 'ghost'" in one_error_line(run)


def test_missing_app(cli: Cli) -> None:
    run = cli.bare("start", "greet", "--backend", cli.backend)
    assert run.code == 2
    assert "--app module:attribute" in one_error_line(run)


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("no_colon", "must be module:attribute"),
        ("surely_not_a_module_xyz:workflows", "cannot import"),
        ("{module}:missing", "has no attribute 'missing'"),
        ("{module}:tries", "expected an Engine, a workflow or a list of workflows"),
    ],
)
def test_bad_app(cli: Cli, app: str, message: str) -> None:
    run = cli.bare("list", "--app", app.format(module=cli.module), "--backend", cli.backend)
    assert run.code == 2
    assert message in one_error_line(run)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bogus"], "invalid choice: 'bogus'"),
        (["list", "--status", "Sleeping"], "unknown status 'Sleeping'"),
        (["list", "--limit", "0"], "at least 1"),
        (["purge", "--before", "soon"], "invalid duration 'soon'"),
        (["list", "--backend", "ftp://x"], "unknown backend scheme 'ftp'"),
    ],
)
def test_usage_errors_are_one_line(cli: Cli, argv: list[str], message: str) -> None:
    store = [] if "--backend" in argv else ["--backend", cli.backend]
    run = cli.bare(*argv, "--app", cli.app, *store)
    assert run.code == 2
    assert message in one_error_line(run)


def test_help_exits_0(cli: Cli) -> None:
    run = cli.bare("--help")
    assert run.code == 0
    for command in ("worker", "start", "status", "list", "show", "cancel", "purge"):
        assert command in run.out


# -- the installed script -------------------------------------------------------------------------


def script() -> list[str]:
    """The installed ``durably`` console script, beside this interpreter."""
    installed = Path(sys.executable).parent / "durably"
    assert installed.exists(), f"{installed} is not installed (pip install -e .)"
    return [str(installed)]


@pytest.mark.parametrize(
    "command", [script, lambda: [sys.executable, "-m", "durably"]], ids=["script", "python-m"]
)
def test_the_command_is_installed(command: Callable[[], list[str]]) -> None:
    done = subprocess.run(
        [*command(), "start", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "--wait" in done.stdout


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DURABLY_")}


def test_interrupting_start_wait_leaves_the_instance_paused(
    cli: Cli, app_dir: tuple[Path, str]
) -> None:
    directory, _ = app_dir
    argv = ["start", "napper", "--input", '"1 hour"', "--id", "i-1", "--wait"]
    started = subprocess.Popen(
        [*script(), *argv, "--app", cli.app, "--backend", cli.backend],
        cwd=directory,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while "Paused" not in cli("status", "i-1").out:
            assert started.poll() is None, started.communicate()
            assert time.monotonic() < deadline, "start --wait did not reach the sleep"
            time.sleep(0.05)
    finally:
        started.send_signal(signal.SIGINT)
        out, err = started.communicate(timeout=30)
    assert started.returncode == 130
    assert err.strip() == "durably: error: interrupted"
    assert out == ""
    assert "Paused (sleep)" in cli("status", "i-1").out  # a worker can carry on with it


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_worker_runs_queued_instances_until_signalled(
    cli: Cli, app_dir: tuple[Path, str], stop: signal.Signals
) -> None:
    directory, _ = app_dir

    async def queue() -> None:
        async with cli.engine() as engine:
            (await engine.queue("napper", "100ms", id="w-1")).unwrap()

    asyncio.run(queue())
    worker = subprocess.Popen(
        [*script(), "worker", cli.app, "--backend", cli.backend, "--concurrency", "4"],
        cwd=directory,  # the app is found in the working directory
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while "Completed" not in cli("status", "w-1").out:
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "the worker did not complete the instance"
            time.sleep(0.1)
    finally:
        worker.send_signal(stop)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "concurrency 4" in err
    assert "stopped" in err
