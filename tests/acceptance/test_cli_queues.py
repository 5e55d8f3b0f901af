"""``durably queue``, ``durably queues`` and ``durably worker --queue`` (coordination.md
section 3): in-process through ``main``, and one real worker process that serves one
queue only.

The app is an ``Engine`` declaring its queues (``--app NAME:engine``): the command
checks queue names against it, before the store is opened.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest

from durably.cli import build_parser, main
from durably.engine import Engine
from tests.acceptance.cli_process import Ran, script

pytestmark = pytest.mark.timeout(120)

APP = """
import durably
from durably.engine import Engine

order = []


@durably.workflow
async def note(tag: str) -> str:
    return await durably.step("note", lambda: order.append(tag) or tag)


@durably.workflow
async def holds(tag: str) -> str:
    await durably.step("started", lambda: order.append(f"start {tag}"))
    await durably.sleep("1h")  # a sleeping instance keeps its slot
    return tag


workflows = [note, holds]
engine = Engine(
    workflows,
    queues=[
        durably.Queue("serial", concurrency=1),
        durably.Queue("emails", concurrency=20, worker_concurrency=5, rate="100/1m"),
        durably.Queue("orders", partition_concurrency=1),
    ],
)
"""


@attrs.frozen
class Cli:
    """Calls ``main`` over one app module (an Engine with queues) and one SQLite file."""

    module: str
    database: Path
    capsys: pytest.CaptureFixture[str]

    @property
    def backend(self) -> str:
        return f"sqlite:///{self.database}"

    def bare(self, *argv: str) -> Ran:
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    def __call__(self, *argv: str) -> Ran:
        """``durably ARGV --app MODULE:engine --backend ...``."""
        return self.bare(*argv, "--app", f"{self.module}:engine", "--backend", self.backend)

    @property
    def app(self) -> ModuleType:
        return sys.modules.get(self.module) or __import__(self.module)

    def engine(self) -> Engine:
        """The app's engine over the same file, to run what was queued."""
        engine: Engine = self.app.engine
        return engine.with_options(backend=self.backend)

    def run_until_idle(self, queues: list[str] | None = None) -> None:
        async def run() -> None:
            async with self.engine() as engine:
                while await engine.run_until_idle(concurrency=1, queues=queues):
                    pass

        asyncio.run(run())

    def queues_json(self) -> dict[str, dict[str, Any]]:
        ran = self.bare("queues", "--json", "--backend", self.backend)
        assert ran.code == 0, ran.err
        return {row["name"]: row for row in json.loads(ran.out)["queues"]}


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    name = f"cli_queue_app_{uuid.uuid4().hex[:8]}"  # a fresh module (and order) per test
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
    return Cli(name, directory / "queues.db", capsys)


def one_error_line(ran: Ran) -> str:
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1, ran.err
    assert lines[0].startswith("durably: error: "), ran.err
    return lines[0].removeprefix("durably: error: ")


def table_rows(text: str) -> dict[str, list[str]]:
    """The rows of a table, by their first cell."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.replace("┃", "│").split("│")[1:-1]]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


# -- durably queue ----------------------------------------------------------------------------


def test_queue_returns_at_once_and_a_worker_runs_it(cli: Cli) -> None:
    ran = cli("queue", "note", "--input", '"a"', "--id", "q-1", "--queue", "serial")
    assert ran.code == 0, ran.err
    assert ran.out.strip() == "q-1  Queued on queue 'serial' (a `durably worker` runs it)"
    assert cli.app.order == []  # nothing ran here
    assert cli("status", "q-1").out.split()[:2] == ["q-1", "Queued"]
    on_default = cli("queue", "note", "--input", '"b"', "--id", "q-2", "--json")
    assert on_default.code == 0, on_default.err
    assert json.loads(on_default.out) == {
        "id": "q-2",
        "workflow": "note",
        "queue": "default",
        "status": "Queued",
    }
    cli.run_until_idle()
    assert sorted(cli.app.order) == ["a", "b"]
    again = cli("queue", "note", "--input", '"a"', "--id", "q-1")
    assert again.code == 0, again.err
    assert again.out.startswith("q-1  Completed at ")
    assert "it exists already: nothing was queued" in again.out


def test_priority_orders_the_starts_of_a_queue(cli: Cli) -> None:
    for tag, priority in [("a", "5"), ("b", "1"), ("c", "-2"), ("d", "1")]:
        argv = ["--input", json.dumps(tag), "--id", tag, "--queue", "serial"]
        ran = cli("queue", "note", *argv, "--priority", priority)
        assert ran.code == 0, ran.err
    cli.run_until_idle()
    assert cli.app.order == ["c", "b", "d", "a"]  # lower first, FIFO within a priority


def test_a_partition_key_holds_one_slot_per_key(cli: Cli) -> None:
    for instance, key in [("p-1", "c1"), ("p-2", "c1"), ("p-3", "c2")]:
        argv = ["--input", json.dumps(instance), "--id", instance, "--queue", "orders"]
        ran = cli("queue", "holds", *argv, "--partition-key", key)
        assert ran.code == 0, ran.err
    cli.run_until_idle()
    assert sorted(cli.app.order) == ["start p-1", "start p-3"]  # p-2 waits for p-1's key
    orders = cli.queues_json()["orders"]
    assert (orders["waiting"], orders["running"]) == (1, 2)


def test_a_dedupe_id_held_by_an_instance_not_ended_is_refused(cli: Cli) -> None:
    first = cli("queue", "holds", "--input", '"x"', "--id", "d-1", "--dedupe-id", "order-7")
    assert first.code == 0, first.err
    again = cli("queue", "holds", "--input", '"y"', "--id", "d-2", "--dedupe-id", "order-7")
    assert again.code == 1
    line = one_error_line(again)
    assert "dedupe id 'order-7' of queue 'default' is held by instance 'd-1'" in line
    assert again.out == ""
    assert cli("status", "d-2").code == 2  # nothing was queued
    other_queue = ["--queue", "serial", "--dedupe-id", "order-7"]
    elsewhere = cli("queue", "holds", "--input", '"z"', "--id", "d-3", *other_queue)
    assert elsewhere.code == 0, elsewhere.err  # a dedupe id belongs to its queue


def test_a_delayed_instance_waits(cli: Cli) -> None:
    ran = cli("queue", "note", "--input", '"later"', "--id", "l-1", "--delay", "1h")
    assert ran.code == 0, ran.err
    cli.run_until_idle()
    assert cli.app.order == []
    assert cli("status", "l-1").out.split()[:2] == ["l-1", "Queued"]
    assert cli.queues_json()["default"]["waiting"] == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--queue", "nope"], "unknown queue 'nope' (the app's queues: default, serial, emails"),
        (["--delay", "soon"], "--delay: invalid duration 'soon'"),
        (["--priority", "high"], "argument --priority: 'high' is not a whole number"),
        (["--dedupe-id", ""], "--dedupe-id must not be empty"),
        (["--partition-key", ""], "--partition-key must not be empty"),
    ],
)
def test_bad_queue_options_are_one_line_and_create_nothing(
    cli: Cli, options: list[str], message: str
) -> None:
    ran = cli("queue", "note", "--input", '"a"', *options)
    assert ran.code == 2
    assert message in one_error_line(ran)
    assert not cli.database.exists()  # refused before the store was opened


def test_queue_needs_the_app(cli: Cli) -> None:
    ran = cli.bare("queue", "note", "--backend", cli.backend)
    assert ran.code == 2
    assert "`durably queue` needs the workflows" in one_error_line(ran)


# -- durably queues ---------------------------------------------------------------------------


def test_queues_prints_counts_and_limits(cli: Cli) -> None:
    for instance, queue in [("h-1", "serial"), ("h-2", "serial"), ("h-3", "emails")]:
        argv = ["--input", json.dumps(instance), "--id", instance, "--queue", queue]
        assert cli("queue", "holds", *argv).code == 0
    cli.run_until_idle(queues=["serial"])  # h-1 sleeps holding serial's one slot
    ran = cli("queues")
    assert ran.code == 0, ran.err
    assert ran.out.splitlines()[0].strip() == "Queues"
    rows = table_rows(ran.out)
    assert rows["queue"] == [
        "waiting", "running", "concurrency", "worker_concurrency", "rate", "partition_concurrency",
    ]  # fmt: skip
    assert rows["default"] == ["0", "0", "-", "-", "-", "-"]
    assert rows["serial"] == ["1", "1", "1", "-", "-", "-"]
    assert rows["emails"] == ["1", "0", "20", "5", "100/1m", "-"]
    assert rows["orders"] == ["0", "0", "-", "-", "-", "1"]
    # Without the app, from the store alone: the limits the app's engine stored.
    assert cli.queues_json() == {
        "default": _json("default", 0, 0, None, None, None, None),
        "emails": _json("emails", 1, 0, 20, 5, "100/1m", None),
        "orders": _json("orders", 0, 0, None, None, None, 1),
        "serial": _json("serial", 1, 1, 1, None, None, None),
    }


def _json(name: str, waiting: int, running: int, *limits: int | str | None) -> dict[str, Any]:
    keys = ("concurrency", "worker_concurrency", "rate", "partition_concurrency")
    return {
        "name": name,
        "waiting": waiting,
        "running": running,
        **dict(zip(keys, limits, strict=True)),
    }


def test_queues_shows_the_queues_the_app_declares_before_the_store_has_seen_them(
    cli: Cli,
) -> None:
    plain = f"{cli.module}:workflows"  # the workflows alone declare only the default queue
    ran = cli.bare("queue", "note", "--input", '"a"', "--app", plain, "--backend", cli.backend)
    assert ran.code == 0, ran.err
    assert list(cli.queues_json()) == ["default"]
    declared = cli("queues", "--json")
    assert declared.code == 0, declared.err
    rows = {row["name"]: row for row in json.loads(declared.out)["queues"]}
    assert rows["default"]["waiting"] == 1
    assert rows["orders"] == _json("orders", 0, 0, None, None, None, 1)
    assert rows["serial"] == _json("serial", 0, 0, 1, None, None, None)


def test_queues_only_reads(cli: Cli) -> None:
    ran = cli.bare("queues", "--backend", cli.backend)
    assert ran.code == 1
    assert one_error_line(ran) == f"no such database: {cli.database}"
    assert not cli.database.exists()


# -- durably worker --queue --------------------------------------------------------------------


def test_worker_queue_is_repeatable() -> None:
    args = build_parser().parse_args(["worker", "app:engine", "--queue", "a", "--queue", "b"])
    assert args.queues == ["a", "b"]
    assert build_parser().parse_args(["worker", "app:engine"]).queues is None


def test_worker_with_an_unknown_queue_refuses_before_opening(cli: Cli) -> None:
    app = f"{cli.module}:engine"
    ran = cli.bare("worker", app, "--backend", cli.backend, "--queue", "serial", "--queue", "mails")
    assert ran.code == 2
    assert one_error_line(ran) == (
        "unknown queue 'mails' (the app's queues: default, serial, emails, orders)"
    )
    assert not cli.database.exists()


def test_a_worker_process_runs_only_the_named_queue(cli: Cli, app_dir: tuple[Path, str]) -> None:
    directory, _ = app_dir
    for instance, queue in [("e-1", "emails"), ("e-2", "emails"), ("o-1", "orders")]:
        argv = ["--input", json.dumps(instance), "--id", instance, "--queue", queue]
        assert cli("queue", "note", *argv).code == 0
    assert cli("queue", "note", "--input", '"d-1"', "--id", "d-1").code == 0
    app = f"{cli.module}:engine"
    worker = subprocess.Popen(
        [script(), "worker", app, "--backend", cli.backend, "--queue", "emails"],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not all(_completed(cli, i) for i in ("e-1", "e-2")):
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "the worker did not run the emails queue"
            time.sleep(0.1)
        time.sleep(0.5)  # several poll intervals: the others were due all along
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "queues emails, concurrency 100" in err.splitlines()[0]
    for instance in ("o-1", "d-1"):
        assert _status(cli, instance) == "Queued", instance
    counts = {name: (row["waiting"], row["running"]) for name, row in cli.queues_json().items()}
    assert counts == {"default": (1, 0), "emails": (0, 0), "orders": (1, 0), "serial": (0, 0)}


def _status(cli: Cli, instance: str) -> str:
    ran = cli.bare("status", instance, "--json", "--backend", cli.backend)
    assert ran.code == 0, ran.err
    tag: str = json.loads(ran.out)["status"]["tag"]
    return tag


def _completed(cli: Cli, instance: str) -> bool:
    return _status(cli, instance) == "Completed"
