"""The examples and the README, as a new user meets them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EPOCH_MS = re.compile(r"\b1[5-9]\d{11}\b")
"""An epoch time in milliseconds (2017 to 2033), which no reader should have to decode."""


def _run(script: Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLY_")}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_demo_kills_after_some_commits_and_prints_times_and_the_cancel_reason(
    tmp_path: Path,
) -> None:
    output = _run(ROOT / "examples" / "demo.py", tmp_path)
    committed = re.search(r"committed before the kill: (\d+) of (\d+) steps", output)
    assert committed is not None, output
    assert 1 <= int(committed.group(1)) < int(committed.group(2)), committed.group(0)
    assert EPOCH_MS.search(output) is None, EPOCH_MS.search(output)
    cancel = next(line for line in output.splitlines() if line.startswith("cancel"))
    assert "customer changed their mind" in cancel
    assert "committed steps that ran again: none" in output
    assert list(tmp_path.iterdir()) == []  # everything in its own temporary folder


def test_orders_run_directly_says_what_it_did(tmp_path: Path) -> None:
    output = _run(ROOT / "examples" / "orders.py", tmp_path)
    assert "step charge_card completed on attempt 3, after 2 failed attempts" in output
    assert "step reserve_stock completed on attempt 2" in output
    assert "'tracking': 'TRACK-O-1'" in output
    assert "cancelled with reason 'customer changed their mind'" in output
    assert list(tmp_path.iterdir()) == []  # no run log or database left in the directory


def test_approval_is_sent_by_another_process_and_the_unanswered_claim_expires(
    tmp_path: Path,
) -> None:
    output = _run(ROOT / "examples" / "approval.py", tmp_path)
    manager = re.search(r"manager \(process (\d+)\): SendResult\(delivered=True", output)
    assert manager is not None, output
    assert f"claim-7: paid (approved by the manager, process {manager.group(1)})" in output
    assert int(manager.group(1)) != os.getpid()
    assert "claim-7 is 'waiting for approval'" in output
    assert "claim-8: expired (stage 'expired')" in output
    assert list(tmp_path.iterdir()) == []  # the database lived in its own temporary folder


def test_fan_out_invoices_each_customer_in_a_child_and_overlaps_the_calls(
    tmp_path: Path,
) -> None:
    output = _run(ROOT / "examples" / "fan_out.py", tmp_path)
    assert "2026-11: 3 invoices, 245 in total; child workflow 'invoice'" in output
    assert "('invoices-2026-11/invoice#4') failed: ValueError: nothing to invoice" in output
    assert "children: invoices-2026-11/invoice, invoices-2026-11/invoice#2," in output
    assert "order o-1: payments ok, stock ok, email ok in" in output
    assert "the three calls ran at once" in output  # each began before any ended
    assert list(tmp_path.iterdir()) == []


def test_queues_hold_their_limits_across_two_workers(tmp_path: Path) -> None:
    output = _run(ROOT / "examples" / "queues.py", tmp_path)
    assert "api: 12 calls, at most 3 at once (concurrency=3)" in output
    assert (
        "orders: one customer's orders overlapped: False; two customers' orders overlapped: True"
    ) in output
    sms = re.search(r"sms: 6 sent, 4 at once, the others (\d+\.\d) s later \(rate 4/1s\)", output)
    assert sms is not None, output
    assert float(sms.group(1)) >= 0.9  # the 5th start waited for the 1st to leave the window
    delay = re.search(r"delay: the delayed sms started (\d+\.\d+) s after it was queued", output)
    assert delay is not None, output
    assert float(delay.group(1)) >= 0.3
    assert "reports in the order they ran: ['incident', 'export', 'weekly', 'monthly']" in output
    assert "dedupe id 'nightly' of queue 'reports' is held by instance 'export-1'" in output
    assert "queue api: 12 waiting, 0 running" in output
    assert list(tmp_path.iterdir()) == []


def test_the_readme_names_no_path_outside_the_repository() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quoted = re.findall(r"`([^`\s]+)`", text)
    paths = [q for q in quoted if "/" in q and "://" not in q and not q.startswith("-")]
    assert paths, "the README names files of the repository"
    for path in paths:
        assert not path.startswith(("../", "/", "~")), f"{path} is outside the repository"
        assert (ROOT / path).exists(), f"the README names {path}, which does not exist"
