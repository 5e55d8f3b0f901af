"""The operator's verbs on a SQLite file: ``replay`` (and ``export``) over 100 histories of
two workflows after a deploy, ``resume`` of a failed instance once its bug is fixed,
``fork`` from a step, and ``cancel`` by filter (with ``--dry-run``)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from durably.engine import Engine
from tests.acceptance.apps import app_module
from tests.acceptance.test_cli_events import Cli

APP = """
import durably

CODE = {"v": "v1", "broken": False}
CALLS = []


def mark(name, value):
    CALLS.append(name)
    return value


def charge_fn(a):
    if CODE["broken"]:
        raise ValueError("bad amount")
    return mark("charge", a * 2)


@durably.workflow
async def billing(n: int) -> int:
    a = await durably.step("fetch", lambda: mark("fetch", n))
    if CODE["v"] == "v1" or (CODE["v"] == "guarded" and not durably.patched("v2-charge")):
        b = await durably.step("charge", lambda: charge_fn(a))
    else:
        b = await durably.step("charge-v2", lambda: mark("charge-v2", a * 3))
    if n % 2:
        await durably.sleep("1h", name="settle")
    return await durably.step("book", lambda: mark("book", b + 1))


@durably.workflow
async def notify(n: int) -> str:
    return await durably.step("send", lambda: mark("send", f"sent {n}"))


workflows = [billing, notify]
"""


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    with app_module(tmp_path, monkeypatch, APP, "cli_operator_app") as name:
        yield Cli(name, tmp_path / "operator.db", capsys)


def app(cli: Cli) -> ModuleType:
    return sys.modules.get(cli.module) or __import__(cli.module)


def run(cli: Cli, *starts: tuple[str, str, int]) -> None:
    async def scenario() -> None:
        async with cli.engine() as engine:
            for workflow, id, n in starts:
                assert (await engine.start(workflow, n, id=id)).unwrap().id == id

    asyncio.run(scenario())


def test_replay_reports_exactly_the_changed_workflows_histories(cli: Cli) -> None:
    module = app(cli)
    run(
        cli,
        *(("billing", f"b-{i}", i) for i in range(50)),
        *(("notify", f"n-{i}", i) for i in range(50)),
    )
    module.CALLS.clear()
    assert cli("replay").code == 0  # the code that wrote them fits them

    module.CODE["v"] = "v2"  # the deploy: "charge" renamed, unguarded
    replayed = cli("replay")
    assert replayed.code == 1
    lines = replayed.out.splitlines()
    reported = {line.split()[0] for line in lines[:-1]}
    assert reported == {f"b-{i}" for i in range(50)}
    assert all(
        "at position 1 the history has 'charge' but the code asked for 'charge-v2'" in line
        for line in lines[:-1]
    )
    assert lines[-1] == "replayed 100 histories: 50 do not fit this code"
    assert module.CALLS == []  # no step function ran

    only = cli("replay", "--workflow", "notify")
    assert (only.code, only.out.strip()) == (0, "replayed 50 histories: all fit this code")

    module.CODE["v"] = "guarded"  # the change behind durably.patched
    assert cli("replay").code == 0
    assert module.CALLS == []


def test_export_then_replay_the_file(cli: Cli, tmp_path: Path) -> None:
    module = app(cli)
    run(cli, ("billing", "b-1", 1), ("billing", "b-2", 2), ("notify", "n-1", 1))
    exported = cli("export", "b-1", "b-2")
    assert exported.code == 0, exported.err
    document = json.loads(exported.out)
    assert [h["id"] for h in document["histories"]] == ["b-1", "b-2"]
    file = tmp_path / "histories.json"
    file.write_text(exported.out, encoding="utf-8")
    module.CODE["v"] = "v2"
    from_file = cli("replay", "--histories", str(file))
    assert from_file.code == 1
    assert from_file.out.splitlines()[-1] == "replayed 2 histories: 2 do not fit this code"
    missing = cli("export", "b-1", "nope")
    assert missing.code == 2
    assert "nope" in missing.err
    bad = tmp_path / "bad.json"
    bad.write_text("{}", encoding="utf-8")
    refused = cli("replay", "--histories", str(bad))
    assert refused.code == 2
    assert "not an export of durably histories" in refused.err


def test_resume_after_the_fix_keeps_the_completed_steps(cli: Cli) -> None:
    module = app(cli)
    module.CODE["broken"] = True
    started = cli("start", "billing", "--input", "2", "--id", "r-1")
    assert started.code == 1
    assert "bad amount" in started.err
    assert module.CALLS == ["fetch"]
    refused = cli("resume", "nope")
    assert refused.code == 2

    module.CODE["broken"] = False  # the fix is deployed
    resumed = cli("resume", "r-1", "--reason", "fixed in 1.2.1")
    assert resumed.code == 0, resumed.err
    assert cli.run_due() == 1
    assert module.CALLS == ["fetch", "charge", "book"]  # fetch did not run again
    status = cli("status", "r-1", "--json").json()
    assert status["status"]["tag"] == "Completed"
    assert status["output"] == 5
    show = cli("show", "r-1").out
    assert "Reopened" in show
    assert "was Failed: fixed in 1.2.1" in show
    again = cli("resume", "r-1")
    assert again.code == 2
    assert "Completed" in again.err


def test_fork_from_a_step_reruns_from_there(cli: Cli) -> None:
    module = app(cli)
    run(cli, ("billing", "f-1", 2))
    assert module.CALLS == ["fetch", "charge", "book"]
    module.CALLS.clear()
    forked = cli("fork", "f-1", "--from-step", "charge", "--id", "f-1-again")
    assert forked.code == 0, forked.err
    assert forked.out.startswith("f-1-again: forked from f-1 at step 'charge'")
    assert cli.run_due() == 1
    assert module.CALLS == ["charge", "book"]
    assert cli("status", "f-1-again", "--json").json()["output"] == 5
    unknown = cli("fork", "f-1", "--from-step", "nope")
    assert unknown.code == 2
    assert "no step 'nope'" in unknown.err


def test_cancel_by_filter(cli: Cli) -> None:
    run(cli, *(("billing", f"c-{i}", i) for i in range(6)))  # odd ones sleep
    dry = cli("cancel", "--workflow", "billing", "--status", "Paused", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.startswith("would cancel 3 instances (--dry-run: nothing was cancelled)")

    async def paused() -> list[str]:
        module = app(cli)
        async with Engine(module.workflows, backend=cli.backend) as engine:
            rows = (await engine.list(status="Paused")).unwrap()
            return sorted(row.id for row in rows)

    assert asyncio.run(paused()) == ["c-1", "c-3", "c-5"]
    done = cli("cancel", "--workflow", "billing", "--status", "Paused", "--reason", "sunset")
    assert done.code == 0, done.err
    assert done.out.startswith("cancelled 3 instances")
    assert asyncio.run(paused()) == []
    assert cli("status", "c-1", "--json").json()["status"]["reason"] == "sunset"
    assert cli("status", "c-2", "--json").json()["status"]["tag"] == "Completed"
    assert cli("cancel").code == 2
    assert cli("cancel", "c-1", "--status", "Paused").code == 2
    final = cli("cancel", "--status", "Completed")
    assert final.code == 2
    assert "final" in final.err
