"""A SQLite database file deleted or replaced under a running engine is noticed at once.

Before, every commit went on "succeeding" into the unlinked file, and after a restart
the instances did not exist. Now each commit and each poll of the worker check the
file's identity (device and inode): the worker stops with a clear error, and a start
fails instead of answering with a result that nothing will ever read again.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
from returns.result import Failure

import durably
from durably.domain.errors import StorageError
from durably.domain.results import ok
from durably.engine import Engine

pytestmark = pytest.mark.timeout(30)


@durably.workflow
async def one_step(n: int) -> int:
    return await durably.step("a", lambda: n + 1)


def remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_the_worker_stops_with_a_clear_error_when_its_file_goes(
    tmp_path: Path, how: str
) -> None:
    db = tmp_path / "app.db"
    async with Engine([one_step], backend=f"sqlite:///{db}", poll_interval="50ms") as engine:
        assert ok(await engine.start(one_step, 1, id="before")).output == 2
        worker = asyncio.create_task(engine.run_worker())
        await asyncio.sleep(0.1)
        assert not worker.done()
        remove(db)
        if how == "replaced":
            other = tmp_path / "other.db"
            sqlite3.connect(other).close()
            os.replace(other, db)
        with pytest.raises(StorageError, match=how):
            await asyncio.wait_for(worker, 5)
        started = await engine.start(one_step, 2, id="after")
        assert isinstance(started, Failure), started
        assert how in str(started.failure())
