"""How much of the SQLite file each of durably's commits writes, next to the floor's.

In WAL mode a commit appends one frame (a whole 4 KB page) to the WAL for every page it
changed, and fsyncs it. This runs ``--workflows`` workflows of 10 trivial steps, as
``sequential`` does (after as many to warm the file up), reads the WAL's frame headers
and prints the frames of each commit of the last workflow, by the b-tree each page
belongs to (SQLite's ``dbstat``), then the frames per commit of the start, the steps
and the end. Then it times bare commits (one tiny insert per table, one transaction
each, WAL + ``synchronous=FULL``) that change 1, 2 and 8 pages, side by side, to show
what a frame more costs on this disk.

Run: ``.venv/bin/python benchmarks/wal_frames.py [--workflows 300]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import struct
import sys
import tempfile
import time
from pathlib import Path
from statistics import fmean

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PAGE = 4096
FRAME_HEADER = 24
WAL_HEADER = 32


def _commits(wal: Path, offset: int) -> list[list[int]]:
    """The page numbers of the frames after ``offset``, one list per commit."""
    data = wal.read_bytes()
    commits: list[list[int]] = []
    pages: list[int] = []
    at = max(offset, WAL_HEADER)
    while at + FRAME_HEADER + PAGE <= len(data):
        page, size_after_commit = struct.unpack(">II", data[at : at + 8])
        pages.append(page)
        if size_after_commit:  # the last frame of a transaction
            commits.append(pages)
            pages = []
        at += FRAME_HEADER + PAGE
    return commits


async def _durably_frames(folder: Path, workflows: int) -> None:
    from scenarios.durably_app import WORKFLOWS, trivial_steps

    from durably.engine import Engine

    db = folder / "frames.db"
    wal = Path(f"{db}-wal")
    async with Engine(WORKFLOWS, backend=f"sqlite:///{db}", synchronous="FULL") as engine:
        # No checkpoint during the run, so every frame stays in the WAL to be read.
        engine.host.db.run_now(lambda conn: conn.execute("PRAGMA wal_autocheckpoint = 0"))
        for i in range(workflows):
            (await engine.start(trivial_steps, 10, id=f"seq-{i}")).unwrap()
        offset = os.path.getsize(wal)  # noqa: ASYNC240 - one look, between workflows
        for i in range(workflows, 2 * workflows):
            (await engine.start(trivial_steps, 10, id=f"seq-{i}")).unwrap()
        commits = _commits(wal, offset)
    with sqlite3.connect(db) as conn:
        kinds = dict(conn.execute("SELECT pageno, name || ' ' || pagetype FROM dbstat"))
    per_workflow = 12  # the start, 10 steps, the end
    if len(commits) != workflows * per_workflow:
        raise RuntimeError(f"expected {workflows * per_workflow} commits, read {len(commits)}")
    print(f"durably, {workflows} workflows of 10 steps after {workflows} others:")
    print("  the last workflow's commits, page by page:")
    for n, pages in enumerate(commits[-per_workflow:]):
        what = "start" if n == 0 else "end" if n == per_workflow - 1 else f"step {n}"
        print(f"    {what:8} {len(pages):2} frames: {', '.join(kinds.get(p, '?') for p in pages)}")
    starts = [len(c) for c in commits[0::per_workflow]]
    ends = [len(c) for c in commits[per_workflow - 1 :: per_workflow]]
    steps = [len(c) for i, c in enumerate(commits) if 0 < i % per_workflow < per_workflow - 1]
    per_step = sum(map(len, commits)) / (workflows * 10)
    print(
        f"  frames per commit, mean: start {fmean(starts):.1f}, step {fmean(steps):.2f},"
        f" end {fmean(ends):.1f}; per step of a workflow {per_step:.2f} (the floor: 1 per commit)"
    )


def _bare_commits(folder: Path, rounds: int = 4, commits: int = 500) -> None:
    """Commits changing 1, 2 and 8 pages (one tiny insert in as many tables), alternated."""
    widths = (1, 2, 8)
    conns = {}
    for width in widths:
        conn = sqlite3.connect(folder / f"bare{width}.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        for t in range(width):
            conn.execute(f"CREATE TABLE t{t} (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        conns[width] = conn

    def timed(width: int, n: int) -> float:
        conn = conns[width]
        started = time.perf_counter()
        for _ in range(n):
            conn.execute("BEGIN IMMEDIATE")
            for t in range(width):
                conn.execute(f"INSERT INTO t{t} (v) VALUES ('x')")
            conn.execute("COMMIT")
        return (time.perf_counter() - started) / n

    for width in widths:
        timed(width, 1200)  # grow the WAL to its working size first: appends cost more
    print("bare commits, ms per commit by pages changed (rounds alternate the widths):")
    for _ in range(rounds):
        row = "  ".join(f"{w} page(s) {timed(w, commits) * 1e3:.3f}" for w in widths)
        print(f"  {row}")
    for conn in conns.values():
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="durably-frames-") as folder:
        asyncio.run(_durably_frames(Path(folder), args.workflows))
        _bare_commits(Path(folder))
    os.sync()


if __name__ == "__main__":
    main()
