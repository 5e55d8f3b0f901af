"""An expense claim that waits for a manager's approval, sent by another process.

The workflow publishes its stage (``set_event``), waits for the event ``approval`` with
a timeout (``wait_for_event``) and pays or rejects; a claim nobody answers expires.

Run it: ``python examples/approval.py``. It starts two claims on a SQLite file in a
temporary folder, with a worker in this process, and starts a second process (this
file, with ``approve``) that plays the manager: it reads the first claim's stage
(``Engine.get_event``) and, once the claim waits, sends the approval
(``Engine.send_event``). The second claim gets no answer and expires after 2 s.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import attrs

import durably
from durably.engine import Engine


@attrs.frozen
class Claim:
    employee: str
    amount: int
    answer_within: str = "3 days"


@durably.workflow
async def expense(claim: Claim) -> str:
    await durably.set_event("stage", "waiting for approval")
    try:
        decision = await durably.wait_for_event("approval", timeout=claim.answer_within)
    except durably.EventTimeoutError:
        await durably.set_event("stage", "expired")
        return "expired"
    await durably.set_event("stage", "decided")
    if not decision["ok"]:
        return f"rejected by {decision['by']}"
    await durably.step("pay", lambda: f"paid {claim.amount} to {claim.employee}")
    return f"paid (approved by {decision['by']}, process {decision['pid']})"


async def manager(url: str, claim_id: str) -> None:
    """The second process: wait until the claim asks, then approve it."""
    async with Engine([expense], backend=url) as engine:
        stage = (await engine.get_event(claim_id, "stage", timeout="10s")).unwrap()
        if stage != "waiting for approval":
            raise SystemExit(f"{claim_id} is {stage!r}: nothing to approve")
        decision = {"ok": True, "by": "the manager", "pid": os.getpid()}
        sent = await engine.send_event(claim_id, "approval", decision, event_id="mail-991")
        print(f"manager (process {os.getpid()}): {sent.unwrap()}", flush=True)


async def main(folder: Path) -> None:
    url = f"sqlite:///{folder / 'claims.db'}"
    async with Engine([expense], backend=url, poll_interval="100ms") as engine:
        await engine.start(expense, Claim("ada", 120), id="claim-7")
        await engine.start(expense, Claim("bob", 80, answer_within="2s"), id="claim-8")
        stage = (await engine.get_event("claim-7", "stage")).unwrap()
        print(f"claim-7 is {stage!r}; the manager runs in another process", flush=True)
        approver = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "approve", url, "claim-7"
        )
        stop = asyncio.Event()
        worker = asyncio.get_running_loop().create_task(engine.run_worker(stop=stop))
        try:
            for claim_id in ("claim-7", "claim-8"):
                outcome = (await engine.result(claim_id, timeout="30s")).unwrap()
                stage = (await engine.get_event(claim_id, "stage")).unwrap()
                print(f"{claim_id}: {outcome} (stage {stage!r})", flush=True)
        finally:
            stop.set()
            await worker
            if await asyncio.wait_for(approver.wait(), 30) != 0:
                raise SystemExit("the manager's process failed")


if __name__ == "__main__":
    if sys.argv[1:2] == ["approve"]:
        asyncio.run(manager(sys.argv[2], sys.argv[3]))
    else:
        with tempfile.TemporaryDirectory(prefix="durably-approval-") as tmp:
            asyncio.run(main(Path(tmp)))
