"""Events from the command line: ``durably send`` delivers one (once per event id),
``durably get-event`` reads what an instance published (waiting for it with ``--wait``),
and ``durably show`` lists waits, published values and the events in the inbox, in text
and in ``--json``."""

from __future__ import annotations

import asyncio
import doctest
import importlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from durably.cli import main
from durably.engine import Engine
from tests.acceptance.apps import app_module

APP = """
import durably


@durably.workflow
async def expense(claim: str) -> str:
    await durably.set_event("stage", "waiting for approval")
    try:
        decision = await durably.wait_for_event("approval", timeout="1 hour")
    except durably.EventTimeoutError:
        return "expired"
    await durably.set_event("stage", {"decided": decision})
    return "paid" if decision["ok"] else "rejected"


@durably.workflow
async def open_ended(x: int) -> object:
    return await durably.wait_for_event("go")


@durably.workflow
async def hurried(x: int) -> str:
    try:
        await durably.wait_for_event("late", timeout="30ms")
    except durably.EventTimeoutError:
        return "too late"
    return "in time"


@durably.workflow
async def publisher(pause: str) -> str:
    await durably.sleep(pause, name="pause")
    await durably.set_event("ready", {"n": 1})
    return "done"


workflows = [expense, open_ended, hurried, publisher]
"""


@attrs.frozen
class Run:
    """What one ``durably`` invocation did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)  # one document, nothing else on stdout

    def error_line(self) -> str:
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("durably: error: ")
        return lines[0].removeprefix("durably: error: ")


@attrs.frozen
class Cli:
    """Calls ``main`` over one app module and one SQLite file."""

    module: str
    database: Path
    capsys: pytest.CaptureFixture[str]

    @property
    def backend(self) -> str:
        return f"sqlite:///{self.database}"

    def __call__(self, *argv: str, backend: str | None = None) -> Run:
        store = backend or self.backend
        code = main([*argv, "--app", f"{self.module}:workflows", "--backend", store])
        captured = self.capsys.readouterr()
        return Run(code, captured.out, captured.err)

    def engine(self) -> Engine:
        module = sys.modules.get(self.module) or __import__(self.module)
        return Engine(module.workflows, backend=self.backend)

    def run_due(self, after_s: float = 0) -> int:
        """Run what is due (a worker in its own engine), after ``after_s`` seconds."""

        async def run() -> int:
            await asyncio.sleep(after_s)
            async with self.engine() as engine:
                return await engine.run_until_idle()

        return asyncio.run(run())


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    with app_module(tmp_path, monkeypatch, APP, "cli_events_app") as name:
        yield Cli(name, tmp_path / "events.db", capsys)


def rows(text: str) -> list[list[str]]:
    """The cells of every body row of the tables in ``text``."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in text.splitlines()
        if line.startswith("│")
    ]


def timeline(text: str) -> list[tuple[str, str, str, str]]:
    """(kind, name, number, outcome) of each timeline row."""
    return [(r[0], r[1], r[2], r[5]) for r in rows(text) if r[0]]


def start_expense(cli: Cli, instance_id: str) -> None:
    started = cli("start", "expense", "--input", '"c-7"', "--id", instance_id)
    assert started.code == 0, started.err
    assert "Paused (event 'approval')" in started.out


# -- durably send -------------------------------------------------------------------------------


def test_send_delivers_the_event_and_the_wait_returns_its_payload(cli: Cli) -> None:
    start_expense(cli, "e-1")
    sent = cli("send", "e-1", "approval", "--payload", '{"ok": false}', "--event-id", "mail-1")
    assert sent.code == 0, sent.err
    assert sent.out == "e-1: event 'approval' delivered\n"
    assert sent.err == ""
    assert cli.run_due() == 1
    assert cli("status", "e-1").out.startswith("e-1  Completed")
    assert cli("show", "e-1", "--json").json()["output"] == "rejected"  # the payload's "ok"


def test_a_second_send_with_the_same_event_id_is_a_duplicate(cli: Cli) -> None:
    start_expense(cli, "e-2")
    first = cli("send", "e-2", "approval", "--payload", "true", "--event-id", "m-1", "--json")
    assert first.json() == {
        "id": "e-2",
        "name": "approval",
        "event_id": "m-1",
        "delivered": True,
        "duplicate": False,
    }
    again = cli("send", "e-2", "approval", "--payload", '{"ok": false}', "--event-id", "m-1")
    assert again.code == 0, again.err
    assert again.out == (
        "e-2: event 'approval' with id 'm-1' was delivered before (duplicate: nothing sent)\n"
    )
    as_json = cli("send", "e-2", "approval", "--event-id", "m-1", "--json").json()
    assert as_json["delivered"] is True
    assert as_json["duplicate"] is True
    events = [r for r in cli("show", "e-2", "--json").json()["timeline"] if r["kind"] == "message"]
    assert [(e["seq"], e["event_id"], e["payload"]) for e in events] == [(1, "m-1", True)]


def test_send_to_an_unknown_id_is_an_error(cli: Cli) -> None:
    start_expense(cli, "e-3")  # the store exists; "ghost" is not in it
    for argv in (("send", "ghost", "approval"), ("send", "ghost", "approval", "--json")):
        run = cli(*argv)
        assert run.code == 2
        assert run.out == ""
        assert run.error_line() == "no workflow instance with id 'ghost'"


def test_send_to_an_ended_instance_is_not_delivered(cli: Cli) -> None:
    finished = cli("start", "hurried", "--input", "1", "--id", "h-1", "--wait")
    assert finished.code == 0, finished.err
    run = cli("send", "h-1", "late", "--payload", "1")
    assert run.code == 1
    assert run.out == ""
    assert run.error_line() == (
        "instance 'h-1' already ended (Completed): event 'late' not delivered"
    )
    shown = cli("show", "h-1", "--json").json()["timeline"]
    assert not [row for row in shown if row["kind"] == "message"]


def test_a_payload_that_is_not_json_is_refused_before_the_store_is_opened(cli: Cli) -> None:
    run = cli("send", "e-4", "approval", "--payload", "{ok: true}")
    assert run.code == 2
    assert run.error_line().startswith("--payload is not valid JSON: ")
    assert not cli.database.exists()  # refused before anything was opened or created


def test_send_refuses_a_store_that_does_not_exist(cli: Cli) -> None:
    run = cli("send", "e-5", "approval")
    assert run.code == 1
    assert run.error_line() == f"no such database: {cli.database}"
    assert not cli.database.exists()


def test_an_empty_event_id_is_bad_input(cli: Cli) -> None:
    start_expense(cli, "e-6")
    run = cli("send", "e-6", "approval", "--event-id", "")
    assert run.code == 2
    assert run.error_line() == "--event-id must not be empty"


# -- durably get-event ----------------------------------------------------------------------------


def test_get_event_prints_the_latest_value_as_json(cli: Cli) -> None:
    start_expense(cli, "g-1")
    got = cli("get-event", "g-1", "stage")
    assert got.code == 0, got.err
    assert got.out == '"waiting for approval"\n'
    assert cli("send", "g-1", "approval", "--payload", '{"ok": true, "at": 5}').code == 0
    assert cli.run_due() == 1
    assert json.loads(cli("get-event", "g-1", "stage").out) == {"decided": {"ok": True, "at": 5}}
    document = cli("get-event", "g-1", "stage", "--json").json()
    assert document == {
        "id": "g-1",
        "key": "stage",
        "value": {"decided": {"ok": True, "at": 5}},  # the user's value, left as it is
        "version": 2,
        "set_at": document["set_at"],
        "set_at_iso": document["set_at_iso"],
    }
    assert isinstance(document["set_at"], int)
    assert document["set_at_iso"].endswith("Z")


def test_get_event_of_an_unknown_id_or_an_unpublished_key_is_an_error(cli: Cli) -> None:
    start_expense(cli, "g-2")
    unknown = cli("get-event", "ghost", "stage")
    assert unknown.code == 2
    assert unknown.out == ""
    assert unknown.error_line() == "no workflow instance with id 'ghost'"
    unset = cli("get-event", "g-2", "verdict", "--json")
    assert unset.code == 1
    assert unset.out == ""
    assert unset.error_line() == "workflow 'g-2' has not published event 'verdict'"


def test_get_event_only_reads(cli: Cli) -> None:
    run = cli("get-event", "g-3", "stage")
    assert run.code == 1
    assert run.error_line() == f"no such database: {cli.database}"
    assert not cli.database.exists()


def test_get_event_wait_sees_a_value_published_meanwhile(cli: Cli) -> None:
    started = cli("start", "publisher", "--input", '"200ms"', "--id", "p-1")
    assert started.code == 0, started.err
    assert cli("get-event", "p-1", "ready").code == 1  # not yet: without --wait, no waiting
    worker = threading.Thread(target=cli.run_due, args=(0.3,))
    began = time.monotonic()
    worker.start()
    try:
        got = cli("get-event", "p-1", "ready", "--wait", "20s")
    finally:
        worker.join()
    assert got.code == 0, got.err
    assert json.loads(got.out) == {"n": 1}
    assert time.monotonic() - began >= 0.3  # it waited for the worker's publish


def test_get_event_wait_gives_up_after_the_duration(cli: Cli) -> None:
    start_expense(cli, "g-4")
    began = time.monotonic()
    run = cli("get-event", "g-4", "verdict", "--wait", "250ms")
    assert time.monotonic() - began >= 0.25
    assert run.code == 1
    assert run.error_line() == "workflow 'g-4' has not published event 'verdict' within 250 ms"


def test_a_bad_wait_duration_is_bad_input(cli: Cli) -> None:
    run = cli("get-event", "g-5", "stage", "--wait", "soon")
    assert run.code == 2
    assert "--wait" in run.error_line()
    assert not cli.database.exists()


# -- durably show: waits, published values and events --------------------------------------------


def test_show_of_an_instance_waiting_for_an_event(cli: Cli) -> None:
    start_expense(cli, "w-1")
    status = cli("status", "w-1").out
    assert status.startswith("w-1  Paused (event 'approval') until 20")
    assert " UTC, in 59m" in status
    show = cli("show", "w-1").out
    assert timeline(show)[1:] == [
        ("published", "stage", "1", '"waiting for approval"'),
        ("wait", "approval", "", timeline(show)[2][3]),
    ]
    waiting = timeline(show)[2][3]
    assert waiting.startswith("waiting until 20")
    assert ", in 59m" in waiting
    assert rows(show)[2][4] == "-"  # how long: not over yet


def test_show_of_a_wait_without_timeout_and_of_an_event_not_received_yet(cli: Cli) -> None:
    assert cli("start", "open_ended", "--input", "1", "--id", "w-2").code == 0
    assert cli("status", "w-2").out == "w-2  Paused (event 'go')  (0 steps completed)\n"
    assert cli("send", "w-2", "other", "--payload", "[1, 2]", "--event-id", "x-1").code == 0
    show = cli("show", "w-2").out
    assert timeline(show)[1:] == [
        ("wait", "go", "", "waiting (no timeout)"),
        ("event", "other", "1", "[1, 2], id 'x-1', not received yet"),
    ]
    # The delivery made it due (it waits for "go" only, so it will pause again).
    assert "Paused (event 'go'), next wake-up " in cli("status", "w-2").out
    assert cli("cancel", "w-2").code == 0
    ended = timeline(cli("show", "w-2").out)
    assert ("wait", "go", "", "never received") in ended
    assert ("event", "other", "1", "[1, 2], id 'x-1', never received") in ended


def test_show_of_a_received_event(cli: Cli) -> None:
    start_expense(cli, "w-3")
    note = "n" * 80
    payload = json.dumps({"ok": True, "note": note})
    assert cli("send", "w-3", "approval", "--payload", payload, "--event-id", "mail-9").code == 0
    assert cli.run_due() == 1
    show = cli("show", "w-3").out
    found = timeline(show)
    assert [row[:3] for row in found] == [
        ("status", "Created", ""),
        ("wait", "approval", ""),
        ("event", "approval", "1"),
        ("published", "stage", "2"),
        ("status", "Completed", ""),
    ]
    assert found[1][3] == "received event #1, id 'mail-9'"
    preview = payload[:39] + "…"  # 40 characters at most
    assert found[2][3] == f"{preview}, id 'mail-9', received by wait 'approval'"
    assert found[3][3] == json.dumps({"decided": json.loads(payload)})[:39] + "…"
    assert note not in show  # whole in --json only
    took = rows(show)[1][4]
    assert took.endswith("ms") or took.endswith("s")


def test_show_of_a_timed_out_wait(cli: Cli) -> None:
    run = cli("start", "hurried", "--input", "1", "--id", "w-4", "--wait")
    assert run.code == 0, run.err
    assert run.out == '"too late"\n'
    assert ("wait", "late", "", "timed out after 30ms") in timeline(cli("show", "w-4").out)


def test_json_of_waits_published_values_and_events(cli: Cli) -> None:
    start_expense(cli, "j-1")
    paused = cli("status", "j-1", "--json").json()["status"]
    assert paused["tag"] == "Paused"
    assert paused["reason"] == "event"
    assert paused["waits"] == ["event:approval"]
    assert paused["resume_at_iso"].endswith("Z")
    waiting = cli("show", "j-1", "--json").json()["timeline"][2]
    assert waiting["kind"] == "wait"
    assert waiting["outcome"] == "waiting"
    assert waiting["deadline_at"] - waiting["started_at"] == 3_600_000
    assert waiting["ended_at"] is None
    assert waiting["ended_at_iso"] is None

    payload = {"ok": True, "decided_at": 5}
    sent = cli("send", "j-1", "approval", "--payload", json.dumps(payload), "--event-id", "m-2")
    assert sent.code == 0, sent.err
    assert cli.run_due() == 1
    by_kind = {r["kind"]: r for r in cli("show", "j-1", "--json").json()["timeline"]}
    wait, message, published = by_kind["wait"], by_kind["message"], by_kind["published"]
    assert set(wait) == {
        "kind", "name", "event_name", "started_at", "started_at_iso", "deadline_at",
        "deadline_at_iso", "timeout_ms", "outcome", "ended_at", "ended_at_iso", "seq",
        "event_id", "sent_at", "sent_at_iso", "payload",
    }  # fmt: skip
    assert (wait["name"], wait["event_name"]) == ("approval", "approval")
    assert wait["outcome"] == "received"
    assert (wait["seq"], wait["event_id"], wait["timeout_ms"]) == (1, "m-2", 3_600_000)
    assert wait["payload"] == payload  # the user's JSON: no "decided_at_iso" added
    assert wait["sent_at"] == message["sent_at"]
    assert wait["ended_at"] >= wait["sent_at"]
    assert message == {
        "kind": "message",
        "seq": 1,
        "type": "event",
        "name": "approval",
        "sent_at": message["sent_at"],
        "sent_at_iso": message["sent_at_iso"],
        "consumed": True,
        "payload": payload,
        "event_id": "m-2",
    }
    assert published == {
        "kind": "published",
        "key": "stage",
        "value": {"decided": payload},
        "version": 2,
        "set_at": published["set_at"],
        "set_at_iso": published["set_at_iso"],
    }


@pytest.mark.parametrize("module", ["durably.cli_format", "durably.cli_inspect"])
def test_the_examples_of_the_formatting_functions(module: str) -> None:
    failed, attempted = doctest.testmod(importlib.import_module(module))
    assert attempted > 0
    assert failed == 0
