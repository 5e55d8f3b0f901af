"""``--app module:engine``: the command runs on the app's Engine, with every one of its options.

Before, the command built a new Engine that copied only the backend, the lease and the
poll interval: ``durably worker shop:engine`` ran with the default recovery limit, no
purge and no tracker, whatever ``shop.engine`` said.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import attrs
import pytest

from durably.cli import build_parser
from durably.cli_app import make_engine, worker_concurrency
from durably.domain.results import ok
from durably.engine import Engine
from durably.status import Completed, Failed, Running
from tests.acceptance.cli_process import durably, script

pytestmark = pytest.mark.timeout(120)

APP = """
import os
import signal
from pathlib import Path

import durably
from durably.engine import Engine

HERE = Path(__file__).resolve().parent


class FileTracker:
    \"\"\"Writes each event's type to a file: what the test reads of the worker's events.\"\"\"

    def __init__(self, path):
        self.path = path

    def emit(self, event):
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(f"{event.type}\\n")

    async def flush(self):
        pass

    def pending(self):
        return 0

    async def close(self):
        pass


def dies_the_first_time():
    marker = HERE / "died-once"
    if not marker.exists():
        marker.write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)  # in the step: the instance stays Running
    return "ran"


@durably.workflow
async def fragile(x: int) -> str:
    return await durably.step("risky", dies_the_first_time)


engine = Engine(
    [fragile],
    backend=f"sqlite:///{HERE / 'app.db'}",
    recovery=durably.RecoveryConfig(max_recovery_attempts=0),
    purge=durably.Purge(delay="1h"),
    tracker=FileTracker(HERE / "events.log"),
    lease=durably.Lease(duration="3s", renew_every="1s"),
    poll_interval="50ms",
)
"""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    name = f"engine_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(APP, encoding="utf-8")
    yield tmp_path, name
    sys.modules.pop(name, None)


def _status_of(directory: Path, instance_id: str) -> object:
    async def read() -> object:
        backend = f"sqlite:///{directory / 'app.db'}"
        async with Engine([], backend=backend, read_only=True) as engine:
            return ok(await engine.status(instance_id)).status

    return asyncio.run(read())


def test_the_worker_runs_with_the_app_engines_recovery_and_tracker(
    app: tuple[Path, str],
) -> None:
    directory, name = app
    started = durably(
        "start", "fragile", "--input", "1", "--id", "f-1", "--app", f"{name}:engine", cwd=directory
    )
    assert started.code == -signal.SIGKILL, started.output  # it died inside its step
    assert isinstance(_status_of(directory, "f-1"), Running)
    worker = subprocess.Popen(
        [script(), "worker", f"{name}:engine"],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not isinstance(status := _status_of(directory, "f-1"), Completed | Failed):
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "the worker did not take the instance over"
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    # The app allows no recovery: the instance its dead process left is failed, not rerun.
    assert isinstance(status, Failed), status
    assert status.error.type == "RecoveryError"
    # The events went to the app's tracker, from the command that started the instance
    # and from the worker.
    events = (directory / "events.log").read_text(encoding="utf-8").split()
    assert events[0] == "workflow.started"
    assert events[-1] == "workflow.failed"


def _imported(directory: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.chdir(directory)
    monkeypatch.syspath_prepend(str(directory))
    return __import__(name)


@pytest.mark.parametrize("command", [["worker", "APP"], ["list", "--app", "APP"]])
def test_the_commands_engine_keeps_every_option_of_the_apps(
    app: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    directory, name = app
    module = _imported(directory, name, monkeypatch)
    argv = [f"{name}:engine" if part == "APP" else part for part in command]
    args = build_parser().parse_args(argv)
    read_only = command[0] == "list"
    engine = make_engine(args, read_only=read_only)
    app_engine: Engine = module.engine
    assert engine is not app_engine
    assert engine.options == attrs.evolve(app_engine.options, read_only=read_only)
    assert engine.tracker is app_engine.tracker
    assert engine._container.recovery().max_recovery_attempts == 0
    assert engine._container.purge().delay_ms == 3_600_000
    assert engine.lease == app_engine.lease
    assert engine.poll_interval_ms == 50
    assert engine.backend_url == app_engine.backend_url
    assert engine.registry.list() == ["fragile"]
    assert engine.read_only is read_only


def test_backend_replaces_only_the_apps_backend(
    app: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, name = app
    module = _imported(directory, name, monkeypatch)
    args = build_parser().parse_args(["worker", f"{name}:engine", "--backend", "memory://"])
    engine = make_engine(args)
    assert engine.backend_url == "memory://"
    assert engine.tracker is module.engine.tracker
    assert engine._container.recovery().max_recovery_attempts == 0
    assert engine.lease == module.engine.lease


def test_a_profile_replaces_the_apps_store_and_its_values_fill_the_rest(
    app: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, name = app
    _imported(directory, name, monkeypatch)
    profile = directory / "deploy.yaml"
    profile.write_text(
        "backend:\n  url: memory://\nworker:\n  concurrency: 7\n  poll_interval: 2s\n",
        encoding="utf-8",
    )
    args = build_parser().parse_args(["worker", f"{name}:engine", "--profile", str(profile)])
    engine = make_engine(args)
    assert engine.backend_url == "memory://"  # the profile's: the command line chose it
    assert engine.poll_interval_ms == 50  # the app's own option wins over the profile
    assert worker_concurrency(args, engine) == 7  # from the profile, not re-read
    assert engine._container.recovery().max_recovery_attempts == 0
