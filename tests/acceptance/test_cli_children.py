"""Child workflows from the command line: ``durably status`` of a parent says which
children it waits for and how many it started, ``durably show`` has a row per child
(how it ended) and a child's end the parent has not received yet, ``show`` of a child
names its parent, and ``--json`` carries the parent, the children and their rows, on a
SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.apps import app_module
from tests.acceptance.test_cli_events import Cli, rows, timeline

APP = """
import durably


@durably.workflow
async def invoice(n: int) -> int:
    if n > 1:
        await durably.wait_for_event("go")
    if n == 2:
        raise LookupError(f"no customer {n}")
    return await durably.step("amount", lambda: n * 10)


@durably.workflow
async def billing(month: str) -> list[str]:
    await durably.step("customers", lambda: [1, 2, 3])
    first = await durably.start_child(invoice, 1)
    second = await durably.start_child(invoice, 2)
    third = await durably.start_child(invoice, 3)
    done = []
    try:
        await second.result()
    except durably.ChildWorkflowError as e:
        done.append(e.status)
    done.append(str(await first.result()))
    done.append(str(await third.result()))
    return done


@durably.workflow
async def fan_out(n: int) -> list[int]:
    return await durably.gather(*(durably.child(invoice, 3) for _ in range(n)))


workflows = [invoice, billing, fan_out]
"""


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    with app_module(tmp_path, monkeypatch, APP, "cli_children_app") as name:
        yield Cli(name, tmp_path / "children.db", capsys)


def header(text: str) -> dict[str, str]:
    """The ``name  value`` lines between the status line and the table."""
    lines = [line.strip() for line in text.splitlines()]
    return {line.split()[0]: line.split(None, 1)[1] for line in lines[1 : lines.index("Timeline")]}


def start_billing(cli: Cli, instance_id: str) -> None:
    """A billing whose first child completed while it waits for the second one."""
    started = cli("start", "billing", "--input", '"2026-11"', "--id", instance_id)
    assert started.code == 0, started.err
    assert started.out.startswith(f"{instance_id}  Paused (child '{instance_id}/invoice#2')")
    assert cli.run_due() >= 2  # the children, then the parent woken by the first one's end


def second_child_fails(cli: Cli, instance_id: str) -> None:
    assert cli("send", f"{instance_id}/invoice#2", "go").code == 0
    assert cli.run_due() >= 2  # it fails; the parent catches it and waits for the third


def test_show_of_a_parent_with_a_completed_a_failed_and_a_running_child(cli: Cli) -> None:
    start_billing(cli, "b-1")
    second_child_fails(cli, "b-1")
    status = cli("status", "b-1")
    assert status.code == 0, status.err
    assert status.out == "b-1  Paused (child 'b-1/invoice#3')  (1 step completed, 3 children)\n"
    show = cli("show", "b-1").out
    assert show.splitlines()[0] == status.out.rstrip("\n")
    assert header(show)["children"] == "3 (1 completed, 1 failed, 1 not ended)"
    assert "parent" not in header(show)
    assert timeline(show) == [
        ("status", "Created", "", ""),
        ("step", "customers", "1", "ok"),
        ("child", "b-1/invoice", "", "Completed: 10"),
        ("child", "b-1/invoice#2", "", "Failed: LookupError: no customer 2"),
        ("child", "b-1/invoice#3", "", "not ended yet"),
    ]  # one row per child: the ends the parent received are told by the child's row
    took = {r[1]: r[4] for r in rows(show) if r[0] == "child"}
    assert took["b-1/invoice#3"] == "-"
    assert took["b-1/invoice"].endswith("ms") or took["b-1/invoice"].endswith("s")


def test_show_of_a_childs_end_the_parent_has_not_received_yet(cli: Cli) -> None:
    start_billing(cli, "b-2")
    show = cli("show", "b-2").out
    assert timeline(show)[2:] == [
        ("child", "b-2/invoice", "", "Completed: 10"),
        ("child", "b-2/invoice#2", "", "not ended yet"),
        ("child", "b-2/invoice#3", "", "not ended yet"),
        ("child end", "b-2/invoice", "1", "Completed, not received yet"),
    ]
    assert header(show)["children"] == "3 (1 completed, 2 not ended)"


def test_show_of_a_child_names_its_parent(cli: Cli) -> None:
    start_billing(cli, "b-3")
    show = cli("show", "b-3/invoice#3")
    assert show.code == 0, show.err
    assert show.out.splitlines()[0] == "b-3/invoice#3  Paused (event 'go')  (0 steps completed)"
    assert header(show.out)["parent"] == "b-3 (as child 'invoice#3')"
    assert "children" not in header(show.out)
    document = cli("show", "b-3/invoice#3", "--json").json()
    assert document["parent"] == {"id": "b-3", "key": "invoice#3"}
    assert document["children"] == []
    assert cli("status", "b-3/invoice", "--json").json()["parent"] == {
        "id": "b-3",
        "key": "invoice",
    }


def test_a_child_that_had_not_ended_when_its_parent_was_cancelled(cli: Cli) -> None:
    start_billing(cli, "b-4")
    assert cli("cancel", "b-4", "--reason", "month closed").code == 0
    assert cli.run_due() == 2  # the cancel reaches the two children that wait
    found = timeline(cli("show", "b-4").out)
    assert found[2:5] == [
        ("child", "b-4/invoice", "", "Completed: 10"),
        ("child", "b-4/invoice#2", "", "not ended when the parent ended"),
        ("child", "b-4/invoice#3", "", "not ended when the parent ended"),
    ]
    assert ("child end", "b-4/invoice", "1", "Completed, never received") in found
    assert cli("status", "b-4/invoice#2").out.startswith(
        "b-4/invoice#2  Cancelled: parent cancelled"
    )


def test_status_says_how_many_of_its_children_a_parent_waits_for(cli: Cli) -> None:
    started = cli("start", "fan_out", "--input", "3", "--id", "f-1")
    assert started.code == 0, started.err
    assert started.out.startswith("f-1  Paused (3 children) (a `durably worker` continues it)")
    assert cli.run_due() == 3  # the children wait for "go"
    assert cli("send", "f-1/invoice#2", "go").code == 0
    assert cli.run_due() == 2
    status = cli("status", "f-1").out
    assert status == "f-1  Paused (2 of 3 children)  (0 steps completed, 3 children)\n"


def test_json_of_a_parent_its_children_and_their_ends(cli: Cli) -> None:
    start_billing(cli, "j-1")
    waiting = cli("show", "j-1", "--json").json()
    assert waiting["parent"] is None
    assert waiting["children"] == ["j-1/invoice", "j-1/invoice#2", "j-1/invoice#3"]
    assert waiting["status"]["waits"] == ["child:j-1/invoice#2"]
    first = next(r for r in waiting["timeline"] if r["kind"] == "child")
    end = next(r for r in waiting["timeline"] if r["kind"] == "message")
    assert set(first) == {
        "kind", "key", "child_id", "workflow", "started_at", "started_at_iso", "outcome",
        "ended_at", "ended_at_iso", "output", "error", "reason", "seq",
    }  # fmt: skip
    assert (first["key"], first["child_id"], first["workflow"]) == (
        "invoice",
        "j-1/invoice",
        "invoice",
    )
    assert (first["outcome"], first["output"], first["seq"]) == ("Completed", 10, 1)
    assert first["ended_at"] == end["sent_at"]
    assert first["ended_at_iso"] == end["sent_at_iso"]
    assert first["started_at_iso"].endswith("Z")
    assert end == {
        "kind": "message",
        "seq": 1,
        "type": "child",
        "name": "j-1/invoice",
        "sent_at": end["sent_at"],
        "sent_at_iso": end["sent_at_iso"],
        "consumed": False,
        "payload": {"status": "Completed", "output": 10},
        "event_id": None,
    }

    second_child_fails(cli, "j-1")
    document = cli("show", "j-1", "--json").json()
    children = [r for r in document["timeline"] if r["kind"] == "child"]
    assert [(r["key"], r["outcome"], r["seq"]) for r in children] == [
        ("invoice", "Completed", 1),
        ("invoice#2", "Failed", 2),
        ("invoice#3", None, None),
    ]
    failed = children[1]
    assert (failed["error"]["type"], failed["error"]["message"]) == ("LookupError", "no customer 2")
    assert failed["output"] is None
    running = children[2]
    assert (running["ended_at"], running["ended_at_iso"]) == (None, None)
    ends = [r for r in document["timeline"] if r["kind"] == "message"]
    assert [(r["seq"], r["name"], r["consumed"]) for r in ends] == [
        (1, "j-1/invoice", True),
        (2, "j-1/invoice#2", True),
    ]
    assert cli("status", "j-1", "--json").json()["children"] == document["children"]
