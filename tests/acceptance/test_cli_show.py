"""``durably show``, ``status`` and ``list`` tell what happened: every attempt with its
error and duration, sleeps and cancel requests as rows, the header (workflow, input,
output, the real next wake-up, why the last alarm failed), ``--traceback``, ``--json``,
and tables that never wrap an id or a step name at 80 columns."""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from durably.cli import main
from durably.engine import Engine, Lease
from tests.acceptance.apps import app_module

APP = """
import asyncio

import durably

tries = {}
gate = {}


def fails(times, key):
    def fn():
        tries[key] = tries.get(key, 0) + 1
        if tries[key] <= times:
            raise ConnectionError(f"{key} down (try {tries[key]})")
        return "fine"
    return fn


@durably.workflow
async def order_fulfilment(order: str) -> dict:
    charged = await durably.step("charge", lambda: f"receipt-{order}")
    shipped = await durably.step("ship", fails(2, order), retry=durably.Retry(3, delay="1ms"))
    return {"receipt": charged, "shipped": shipped}


@durably.workflow
async def doomed(x: int) -> str:
    return await durably.step("call", fails(100, "doomed"), retry=durably.Retry(1, delay="1ms"))


@durably.workflow
async def napper(nap: str) -> str:
    await durably.step("before", lambda: 1)
    await durably.sleep(nap, name="nap")
    return await durably.step("after", lambda: "rested")


async def wait_for_gate():
    gate["entered"].set()
    await gate["open"].wait()


@durably.workflow
async def blocked(x: int) -> int:
    await durably.step("first", lambda: 1)
    await durably.step("wait_for_gate", wait_for_gate)
    await durably.step("never", lambda: 3)
    return x


LONG_STEP = "reserve_inventory_in_the_north_warehouse_x"


@durably.workflow
async def a_workflow_with_a_rather_long_name(x: int) -> int:
    await durably.step(LONG_STEP, lambda: x)
    await durably.step("fails_then_works", fails(1, "long"), retry=durably.Retry(2, delay="1ms"))
    return x


workflows = [order_fulfilment, doomed, napper, blocked, a_workflow_with_a_rather_long_name]
none = []
"""

LONG_STEP = "reserve_inventory_in_the_north_warehouse_x"
LONG_ID = "order-2025-05-01-customer-000123456789-" + "a" * 24


@attrs.frozen
class Run:
    """What one ``durably`` invocation did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)  # one document, nothing else on stdout


@attrs.frozen
class Cli:
    """Calls ``main`` over one app module and one SQLite file."""

    module: str
    database: Path
    capsys: pytest.CaptureFixture[str]

    @property
    def backend(self) -> str:
        return f"sqlite:///{self.database}"

    def __call__(self, *argv: str) -> Run:
        code = main([*argv, "--app", f"{self.module}:workflows", "--backend", self.backend])
        captured = self.capsys.readouterr()
        return Run(code, captured.out, captured.err)

    def engine(self, attribute: str = "workflows", **options: Any) -> Engine:
        module = sys.modules.get(self.module) or __import__(self.module)
        return Engine(getattr(module, attribute), backend=self.backend, **options)


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    with app_module(tmp_path, monkeypatch, APP, "cli_show_app") as name:
        yield Cli(name, tmp_path / "show.db", capsys)


def rows(text: str) -> list[list[str]]:
    """The cells of every body row of the tables in ``text`` (one list per line)."""
    found = []
    for line in text.splitlines():
        if line.startswith("│"):
            found.append([cell.strip() for cell in line.split("│")[1:-1]])
    return found


def timeline(text: str) -> list[tuple[str, str, str, str]]:
    """(kind, name, attempt, outcome) of each timeline row (first line of each)."""
    return [(r[0], r[1], r[2], r[5]) for r in rows(text) if r[0]]


def iso_of(ms: int) -> str:
    return (
        datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.%f"
        )[:-3]
        + "Z"
    )


# -- every attempt, the header, the traceback ---------------------------------------------------


def test_show_lists_every_attempt_with_its_error_and_duration(cli: Cli) -> None:
    assert cli("start", "order_fulfilment", "--input", '"o-1"', "--id", "o-1", "--wait").code == 0
    show = cli("show", "o-1")
    assert show.code == 0, show.err
    assert timeline(show.out) == [
        ("status", "Created", "", ""),
        ("step", "charge", "1", "ok"),
        ("step", "ship", "1", "ConnectionError: o-1 down (try 1)"),
        ("step", "ship", "2", "ConnectionError: o-1 down (try 2)"),
        ("step", "ship", "3", "ok"),
        ("status", "Completed", "", ""),
    ]
    for row in rows(show.out):
        if row[0] == "step":
            assert row[3].startswith("20")  # when it started, in UTC
            assert row[4].endswith("ms") or row[4].endswith("s")  # how long it took


def test_show_has_the_workflow_its_input_and_its_output(cli: Cli) -> None:
    assert cli("start", "order_fulfilment", "--input", '"o-2"', "--id", "o-2", "--wait").code == 0
    lines = cli("show", "o-2").out.splitlines()
    assert lines[0].startswith("o-2  Completed at ")
    header = {line.split()[0]: line.split(None, 1)[1].strip() for line in lines[1:5]}
    assert header["workflow"] == "order_fulfilment"
    assert header["input"] == '"o-2"'
    assert json.loads(header["output"]) == {"receipt": "receipt-o-2", "shipped": "fine"}
    assert header["created"].endswith(" UTC")


def test_a_failed_instance_ends_with_its_failed_attempts_never_retrying(cli: Cli) -> None:
    run = cli("start", "doomed", "--input", "1", "--id", "d-1", "--wait")
    assert run.code == 1
    show = cli("show", "d-1").out
    assert "retrying" not in show
    assert "retry " not in show
    *steps, failed = timeline(show)[1:]
    assert steps == [
        ("step", "call", "1", "ConnectionError: doomed down (try 1)"),
        ("step", "call", "2", "ConnectionError: doomed down (try 2)"),
    ]
    assert failed[:2] == ("status", "Failed")
    assert failed[3].startswith("RetryExhaustedError: ")
    assert "Traceback (most recent call last)" not in show  # one line of error by default
    assert "--traceback" in show


def test_traceback_prints_the_stored_traceback(cli: Cli) -> None:
    assert cli("start", "doomed", "--input", "1", "--id", "d-2", "--wait").code == 1
    show = cli("show", "d-2", "--traceback")
    assert show.code == 0, show.err
    assert "Traceback (most recent call last)" in show.out
    assert 'raise ConnectionError(f"{key} down (try {tries[key]})")' in show.out
    assert "RetryExhaustedError" in show.out


def test_sleeps_are_rows_waiting_then_done(cli: Cli) -> None:
    assert cli("start", "napper", "--input", '"1 hour"', "--id", "n-1").code == 0
    show = cli("show", "n-1").out
    [nap] = [r for r in rows(show) if r[:2] == ["sleep", "nap"]]
    assert nap[4] == "1h00m"
    assert nap[5].startswith("until 20")
    assert ", in 59m" in nap[5]
    assert "next wake-up" in show
    assert cli("start", "napper", "--input", '"10ms"', "--id", "n-2", "--wait").code == 0
    assert ("sleep", "nap", "", "done") in timeline(cli("show", "n-2").out)


def test_a_cancel_request_from_another_process_is_a_row(cli: Cli) -> None:
    async def scenario() -> None:
        module = sys.modules.get(cli.module) or __import__(cli.module)
        module.gate.update(open=asyncio.Event(), entered=asyncio.Event())
        lease = Lease(duration="30s", renew_every="10s")
        async with cli.engine(lease=lease) as runner, cli.engine(lease=lease) as other:
            task = asyncio.create_task(runner.start("blocked", 1, id="c-1"))
            await asyncio.wait_for(module.gate["entered"].wait(), 10)
            # The other engine cannot take the lease: the cancel goes to the inbox.
            assert (await other.cancel("c-1", reason="customer asked")).unwrap().cancelled
            module.gate["open"].set()
            await task

    asyncio.run(scenario())
    show = cli("show", "c-1").out
    assert ("message", "cancel", "", "'customer asked', acted on") in timeline(show)
    assert timeline(show)[-1] == ("status", "Cancelled", "", "customer asked")


# -- the alarm: the real next wake-up, and why it failed -------------------------------------------


def test_a_worker_without_the_workflow_leaves_it_due_and_unclaimed(cli: Cli) -> None:
    assert cli("start", "napper", "--input", '"100ms"', "--id", "a-1").code == 0

    async def fire_without_the_workflow() -> None:
        await asyncio.sleep(0.15)
        async with cli.engine("none", lease=Lease(duration="1h", renew_every="10s")) as bare:
            assert await bare.run_until_idle() == 0  # skipped: not claimed, not failed

    asyncio.run(fire_without_the_workflow())
    status = cli("status", "a-1").out
    assert "in 0ms" not in status
    assert " ago, unclaimed" in status
    assert "last alarm failed" not in status
    show = cli("show", "a-1").out
    header = {line.split()[0]: line for line in show.splitlines()[1:8]}
    assert "due since 20" in header["next"]
    assert "unclaimed" in header["next"]
    status_json = cli("status", "a-1", "--json").json()
    assert status_json["last_alarm_error"] is None
    assert status_json["recovery_attempts"] == 0
    [row] = [r for r in cli("list", "--json").json()["instances"] if r["id"] == "a-1"]
    assert row["due_at"] == status_json["next_wakeup_at"]
    listed = cli("list").out
    assert "due since" in listed
    assert "unclaimed" in listed


def test_an_overdue_instance_says_since_when(cli: Cli) -> None:
    assert cli("start", "napper", "--input", '"20ms"', "--id", "late-1").code == 0

    async def pause() -> None:
        await asyncio.sleep(0.1)  # no worker runs: the sleep's end passes

    asyncio.run(pause())
    status = cli("status", "late-1").out
    assert " ago, unclaimed" in status
    assert "in 0ms" not in status
    show = cli("show", "late-1").out
    assert "due since 20" in show


# -- --json --------------------------------------------------------------------------------------


def test_json_of_list_status_and_show(cli: Cli) -> None:
    assert cli("start", "order_fulfilment", "--input", '"j-1"', "--id", "j-1", "--wait").code == 0
    assert cli("start", "napper", "--input", '"1 hour"', "--id", "j-2").code == 0

    listed = cli("list", "--json").json()
    assert [(i["id"], i["workflow"], i["status"]) for i in listed["instances"]] == [
        ("j-2", "napper", "Paused"),
        ("j-1", "order_fulfilment", "Completed"),
    ]
    for instance in listed["instances"]:
        assert set(instance) == {
            "id",
            "workflow",
            "status",
            "created_at",
            "created_at_iso",
            "updated_at",
            "updated_at_iso",
            "due_at",
            "due_at_iso",
        }
        assert instance["created_at_iso"] == iso_of(instance["created_at"])
    assert listed["instances"][1]["due_at"] is None  # completed: no alarm
    assert listed["instances"][0]["due_at"] > listed["instances"][0]["updated_at"]

    status = cli("status", "j-2", "--json").json()
    assert status["id"] == "j-2"
    assert status["workflow"] == "napper"
    assert status["status"]["tag"] == "Paused"
    assert status["status"]["resume_at_iso"] == iso_of(status["status"]["resume_at"])
    assert status["next_wakeup_at"] == status["status"]["resume_at"]
    assert status["completed_steps"] == 1
    assert status["input"] == "1 hour"
    assert "timeline" not in status

    shown = cli("show", "j-1", "--json").json()
    assert shown["output"] == {"receipt": "receipt-j-1", "shipped": "fine"}
    assert shown["status"] == {
        "tag": "Completed",
        "completed_at": shown["status"]["completed_at"],
        "completed_at_iso": iso_of(shown["status"]["completed_at"]),
    }
    kinds = [
        (r["kind"], r.get("name") or r.get("status"), r.get("outcome")) for r in shown["timeline"]
    ]
    assert kinds == [
        ("status", "Created", None),
        ("step", "charge", "ok"),
        ("step", "ship", "failed"),
        ("step", "ship", "failed"),
        ("step", "ship", "ok"),
        ("status", "Completed", None),
    ]
    failed = shown["timeline"][2]
    assert failed["error"]["type"] == "ConnectionError"
    assert "Traceback" in failed["error"]["traceback"]
    assert failed["ended_at_iso"] == iso_of(failed["ended_at"])
    assert isinstance(failed["duration_ms"], int)


def test_json_of_an_unknown_id_is_an_error_and_nothing_on_stdout(cli: Cli) -> None:
    # The store exists (reading commands never create one) but holds no "ghost".
    assert cli("start", "order_fulfilment", "--input", '"o-9"', "--id", "o-9", "--wait").code == 0
    for command in ("status", "show"):
        run = cli(command, "ghost", "--json")
        assert run.code == 2
        assert run.out == ""
        assert "no workflow instance with id 'ghost'" in run.err


# -- 80 columns ------------------------------------------------------------------------------------


def test_at_80_columns_ids_and_step_names_never_wrap(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = "a_workflow_with_a_rather_long_name"
    assert cli("start", workflow, "--input", "1", "--id", LONG_ID, "--wait").code == 0
    assert cli("start", "doomed", "--input", "1", "--id", "short", "--wait").code == 1
    monkeypatch.setenv("COLUMNS", "80")
    show = cli("show", LONG_ID).out
    assert any(line.startswith(f"{LONG_ID}  Completed") for line in show.splitlines())
    assert [r[1] for r in rows(show) if r[0] == "step"][:1] == [LONG_STEP]  # whole, one line
    listed = cli("list").out
    listed_rows = rows(listed)
    assert [LONG_ID, workflow] in [r[:2] for r in listed_rows]
    # What fits stays within 80 columns: times and errors fold instead.
    narrow = cli("show", "short").out
    assert max(len(line.rstrip()) for line in narrow.splitlines()[1:]) <= 80
    assert ("step", "call", "1", "ConnectionError:") in timeline(narrow)  # the rest folds
