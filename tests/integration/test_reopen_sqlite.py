"""Close an engine and open a new one on the same SQLite file: everything is still there.

Completed, failed, paused and cancelled instances keep their status, output, error and
step records; an idempotent ``start`` with a known id answers from storage without
running any step; a paused instance resumes in the new engine; a purge leaves a
tombstone that still answers a later ``start``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import pytest
from returns.result import Failure, Success

import durably
from durably.adapters.clock import ManualClock
from durably.domain.errors import ResultTimeoutError, WorkflowCancelledError, WorkflowFailedError
from durably.domain.status import Cancelled, Completed, Failed, Paused
from durably.engine import Engine, Lease, Purge
from tests.integration.support import db_url, stranded_problems

pytestmark = pytest.mark.timeout(30)

calls: Counter[str] = Counter()
LEASE = Lease(duration="2s", renew_every="500ms")
HOUR_MS = 3_600_000


@attrs.frozen
class Receipt:
    """A structured output: it must come back as a ``Receipt``, not a dict."""

    total: int
    note: str


def _counted(name: str, value: int) -> int:
    calls[name] += 1
    return value


@durably.workflow(name="reopen_ok")
async def reopen_ok(n: int) -> Receipt:
    """Two steps; the output is structured."""
    a = await durably.step("a", lambda: _counted("ok.a", n + 1))
    b = await durably.step("b", lambda: _counted("ok.b", a * 2))
    return Receipt(total=b, note=f"n={n}")


def _boom(n: int) -> int:
    calls["fail.boom"] += 1
    raise ValueError(f"boom {n}")


@durably.workflow(name="reopen_fail")
async def reopen_fail(n: int) -> int:
    """One good step, then one that raises."""
    a = await durably.step("a", lambda: _counted("fail.a", n))
    return a + await durably.step("boom", lambda: _boom(n))


@durably.workflow(name="reopen_pause")
async def reopen_pause(n: int) -> int:
    """A step, a one-hour sleep, a step."""
    a = await durably.step("a", lambda: _counted("pause.a", n))
    await durably.sleep("1 hour")
    return await durably.step("b", lambda: _counted("pause.b", a * 10))


WORKFLOWS: list[durably.WorkflowDefinition[Any, Any]] = [reopen_ok, reopen_fail, reopen_pause]
IDS = ["ok", "failed", "paused", "cancelled-queued", "cancelled-paused"]


async def _snapshot(engine: Engine) -> dict[str, Any]:
    """Everything the engine answers about every instance (its result without waiting)."""
    snap: dict[str, Any] = {"list": (await engine.list()).unwrap()}
    for iid in IDS:
        snap[f"{iid}.status"] = (await engine.status(iid)).unwrap()
        snap[f"{iid}.steps"] = (await engine.steps(iid)).unwrap()
        result = await engine.result(iid, timeout="20ms")
        snap[f"{iid}.result"] = (
            ("ok", result.unwrap())
            if isinstance(result, Success)
            else ("error", str(result.failure()))
        )
    return snap


async def _make_instances(engine: Engine) -> None:
    ok = (await engine.start(reopen_ok, 20, id="ok")).unwrap()
    assert ok.completed
    assert ok.output == Receipt(total=42, note="n=20")
    failed = (await engine.start(reopen_fail, 1, id="failed")).unwrap()
    assert not failed.completed
    assert isinstance(failed.status, Failed)
    paused = (await engine.start(reopen_pause, 3, id="paused")).unwrap()
    assert isinstance(paused.status, Paused)
    (await engine.queue(reopen_ok, 5, id="cancelled-queued")).unwrap()
    assert (await engine.cancel("cancelled-queued", reason="no longer needed")).unwrap().cancelled
    (await engine.start(reopen_pause, 4, id="cancelled-paused")).unwrap()
    assert (await engine.cancel("cancelled-paused", reason="changed my mind")).unwrap().cancelled


async def test_a_reopened_engine_sees_the_same_instances(tmp_path: Path) -> None:
    db = tmp_path / "reopen.db"
    calls.clear()
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as first:
        await _make_instances(first)
        before = await _snapshot(first)
    assert calls == Counter({"ok.a": 1, "ok.b": 1, "fail.a": 1, "fail.boom": 1, "pause.a": 2})
    assert stranded_problems(db) == []

    calls.clear()
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as second:
        after = await _snapshot(second)
        assert after == before

        # The answers themselves, read back through the new engine.
        assert (await second.result("ok")).unwrap() == Receipt(total=42, note="n=20")
        failed = await second.result("failed")
        assert isinstance(failed, Failure)
        error = failed.failure()
        assert isinstance(error, WorkflowFailedError)
        assert "boom 1" in str(error)
        assert "'boom'" in str(error), "the failing step is named"
        paused = await second.result("paused", timeout="20ms")
        assert isinstance(paused, Failure)
        assert isinstance(paused.failure(), ResultTimeoutError)
        for iid, reason in (
            ("cancelled-queued", "no longer needed"),
            ("cancelled-paused", "changed my mind"),
        ):
            cancelled = await second.result(iid)
            assert isinstance(cancelled, Failure)
            cause = cancelled.failure()
            assert isinstance(cause, WorkflowCancelledError)
            assert cause.reason == reason
            status = (await second.status(iid)).unwrap().status
            assert isinstance(status, Cancelled)
            assert status.reason == reason
        assert [r.name for r in (await second.steps("ok")).unwrap()] == ["a", "b"]
        assert [r.name for r in (await second.steps("paused")).unwrap()] == ["a"]
        assert [r.name for r in (await second.steps("cancelled-queued")).unwrap()] == []
        by_status = {s.id: s.status for s in (await second.list()).unwrap()}
        assert by_status == {
            "ok": "Completed",
            "failed": "Failed",
            "paused": "Paused",
            "cancelled-queued": "Cancelled",
            "cancelled-paused": "Cancelled",
        }

        # Idempotent starts with the same ids: answered from storage, no step runs.
        again = (await second.start(reopen_ok, 999, id="ok")).unwrap()
        assert again.completed
        assert again.output == Receipt(total=42, note="n=20")
        assert isinstance(again.status, Completed)
        again_failed = (await second.start("reopen_fail", 2, id="failed")).unwrap()
        assert not again_failed.completed
        assert isinstance(again_failed.status, Failed)
        again_paused = (await second.start(reopen_pause, 5, id="paused")).unwrap()
        assert isinstance(again_paused.status, Paused)
        again_cancelled = (await second.queue(reopen_ok, 6, id="cancelled-queued")).unwrap()
        assert isinstance(again_cancelled.status, Cancelled)
        # Nothing is due an hour before the sleep ends: no alarm fires, nothing runs.
        assert await second.run_until_idle() == 0
        assert await _snapshot(second) == before
    assert calls == Counter(), f"steps ran after reopening: {calls}"


async def test_a_paused_instance_resumes_in_a_reopened_engine(tmp_path: Path) -> None:
    db = tmp_path / "resume.db"
    calls.clear()
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as first:
        paused = (await first.start(reopen_pause, 7, id="p")).unwrap()
        assert isinstance(paused.status, Paused)
        resume_at = paused.status.resume_at
        assert resume_at is not None
    assert calls == Counter({"pause.a": 1})

    clock = ManualClock(resume_at - 1)
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE, clock=clock) as early:
        assert await early.run_until_idle() == 0, "not due yet"
        status = (await early.status("p")).unwrap().status
        assert isinstance(status, Paused)
        assert status.resume_at == resume_at
    clock = ManualClock(resume_at + 1)
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE, clock=clock) as later:
        assert await later.run_until_idle() == 1
        assert (await later.result("p")).unwrap() == 70
        assert [r.name for r in (await later.steps("p")).unwrap()] == ["a", "b"]
    assert calls == Counter({"pause.a": 1, "pause.b": 1})
    assert stranded_problems(db) == []


async def alarm_of(engine: Engine, iid: str) -> int | None:
    """The alarm of instance ``iid``."""
    alarm: int | None = (await engine.host.runtime(iid, None).scheduler.get_scheduled()).unwrap()
    return alarm


async def test_a_purged_instance_still_answers_start_after_reopening(tmp_path: Path) -> None:
    db = tmp_path / "purge.db"
    calls.clear()
    now = time.time_ns() // 1_000_000
    purge = Purge(delay="1 minute")
    async with Engine(
        WORKFLOWS, backend=db_url(db), lease=LEASE, purge=purge, clock=ManualClock(now)
    ) as first:
        assert (await first.start(reopen_ok, 1, id="gone")).unwrap().completed
        assert await alarm_of(first, "gone") == now + 60_000
    assert stranded_problems(db, allow_terminal_alarm=True) == []
    async with Engine(
        WORKFLOWS, backend=db_url(db), lease=LEASE, purge=purge, clock=ManualClock(now + HOUR_MS)
    ) as second:
        assert await second.run_until_idle() == 1
        assert await alarm_of(second, "gone") is None
        keys = set(await second.host.read_prefix("gone", ""))
        assert "workflow:tombstone" in keys
        assert not any(k.startswith("step:") for k in keys), keys
    calls.clear()
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE, purge=purge) as third:
        again = (await third.start(reopen_ok, 1, id="gone")).unwrap()
        assert isinstance(again.status, Completed)
        assert again.completed
        summary = (await third.list()).unwrap()
        assert [(s.id, s.status) for s in summary] == [("gone", "Completed")]
    assert calls == Counter(), "a purged instance ran again"
    assert stranded_problems(db) == []
