"""``make demo``: durably's story in under a minute, on a SQLite file.

1. an order whose payment fails twice and retries, whose stock step times out once,
   and which sleeps durably before shipping;
2. an order cancelled while it waits;
3. a worker process killed with SIGKILL in the middle of a long workflow, and a new
   process finishing it without running any committed step again.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orders
from rich.console import Console
from rich.table import Table

from durably.domain.errors import StorageError
from durably.engine import Engine, Lease
from durably.status import Cancelled, Paused, WorkflowStatus

console = Console()
BATCHES = 12
KILL_AFTER = 4
"""The worker is killed once this many of its steps are committed (and the rest not)."""


def when(ms: int | None) -> str:
    """A readable UTC time of day."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]


def describe(status: WorkflowStatus | None) -> str:
    """A status in words, with times of day rather than epoch milliseconds."""
    if isinstance(status, Paused):
        what = f"retry of step {status.step_name!r}" if status.reason == "retry" else "sleep"
        return f"Paused ({what}) until {when(status.resume_at)} UTC"
    if isinstance(status, Cancelled):
        return f"Cancelled (reason: {status.reason!r})"
    return status.tag if status is not None else "none"


async def timeline(engine: Engine, instance_id: str) -> None:
    """Print the status and the step timeline of one instance."""
    status = (await engine.status(instance_id)).unwrap().status
    steps = (await engine.steps(instance_id)).unwrap()
    table = Table(title=f"{instance_id}: {status.tag if status else 'none'}")
    for column in ("step", "attempt", "started", "completed", "ms", "error"):
        table.add_column(column)
    for s in steps:
        table.add_row(
            s.name,
            str(s.attempt),
            when(s.started_at),
            when(s.completed_at),
            "-" if s.duration_ms is None else str(s.duration_ms),
            s.error or "",
        )
    console.print(table)


def engine_for(db: Path) -> Engine:
    """The demo's engine: a short lease, so a dead worker's work is taken over quickly."""
    return Engine(
        orders.WORKFLOWS,
        backend=f"sqlite:///{db}",
        lease=Lease(duration="2s", renew_every="500ms"),
        poll_interval="100ms",
    )


async def part_one(db: Path) -> None:
    console.rule("1. retries, a timeout and a durable sleep")
    async with engine_for(db) as engine:
        started = (await engine.start(orders.process_order, "o-1", id="order-o-1")).unwrap()
        console.print(f"start returned: completed={started.completed}, {describe(started.status)}")
        stop = asyncio.Event()
        worker = asyncio.create_task(engine.run_worker(stop=stop))
        output = (await engine.result("order-o-1", timeout="30s")).unwrap()
        stop.set()
        await worker
        console.print(f"output: {output}")
        await timeline(engine, "order-o-1")
        again = (await engine.start(orders.process_order, "other", id="order-o-1")).unwrap()
        console.print(f"start again with the same id: nothing runs, answer {again.output}")


async def part_two(db: Path) -> None:
    console.rule("2. cancelling an order while it waits")
    async with engine_for(db) as engine:
        (await engine.queue(orders.process_order, "o-2", id="order-o-2")).unwrap()
        reason = "customer changed their mind"
        result = (await engine.cancel("order-o-2", reason=reason)).unwrap()
        console.print(
            f"cancel with reason {reason!r}: cancelled={result.cancelled} "
            f"(it was {result.previous_status})"
        )
        status = (await engine.status("order-o-2")).unwrap().status
        console.print(f"status: {describe(status)}")
        console.print(f"result: {(await engine.result('order-o-2')).failure()}")


def child(db: str) -> None:
    """The worker process that gets killed: starts the long export and runs it."""

    async def run() -> None:
        async with engine_for(Path(db)) as engine:
            await engine.start(orders.long_export, BATCHES, id="export-1")

    asyncio.run(run())


async def committed_steps(db: Path) -> int:
    """How many steps of ``export-1`` are committed, read from outside the worker (a
    read-only engine: it never writes, nor creates the file before the worker does)."""
    try:
        async with Engine(orders.WORKFLOWS, backend=f"sqlite:///{db}", read_only=True) as probe:
            found = (await probe.status("export-1")).unwrap()
    except StorageError:  # the worker has not created the database yet
        return 0
    return len(found.completed_steps)


async def part_three(db: Path) -> None:
    console.rule("3. kill -9 in the middle, and resume")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", str(db), env=os.environ.copy()
    )
    # Kill it once some steps are committed, however long the process took to start.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if await committed_steps(db) >= KILL_AFTER:
            break
        await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    console.print(f"worker {proc.pid} killed with SIGKILL (exit {proc.returncode})")
    async with engine_for(db) as engine:
        before = (await engine.steps("export-1")).unwrap()
        console.print(f"committed before the kill: {len(before)} of {BATCHES} steps")
        stop = asyncio.Event()
        worker = asyncio.create_task(engine.run_worker(stop=stop))
        output = (await engine.result("export-1", timeout="30s")).unwrap()
        stop.set()
        await worker
        console.print(
            f"a new process finished it: output {output} (expected {sum(range(BATCHES))})"
        )
        await timeline(engine, "export-1")
        runs = collections.Counter(
            line.split()[1]
            for line in orders.RUN_LOG.read_text().splitlines()
            if line.startswith("export-1 ")
        )
        committed = {s.name for s in before}
        repeated = sorted(name for name in committed if runs[name] > 1)
        in_flight = sorted(
            name for name, count in runs.items() if count > 1 and name not in committed
        )
        console.print(f"committed steps that ran again: {repeated or 'none'}")
        console.print(f"in flight at the kill, run again (at least once): {in_flight or 'none'}")
        if repeated:
            raise SystemExit("a committed step ran twice")


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="durably-demo-") as folder:
        db = Path(folder) / "demo.db"
        os.environ["DURABLY_DEMO_LOG"] = str(Path(folder) / "runs.log")
        orders.RUN_LOG = Path(os.environ["DURABLY_DEMO_LOG"])
        started = time.perf_counter()
        await part_one(db)
        await part_two(db)
        await part_three(db)
        console.rule(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        asyncio.run(main())
