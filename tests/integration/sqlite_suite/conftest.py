"""Run the engine test suite of the in-memory runtime, unchanged, over SQLite.

Each module here star-imports one module of ``tests/unit``; this conftest replaces
``create_in_memory_runtime`` in those modules, for each test, by a factory that gives
the same runtime and handle over a SQLite database file.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durably.adapters.memory import MemoryBackend
from durably.adapters.sqlite import SqliteHost
from durably.ports import InstanceRuntime
from durably.testing.sqlite import SqliteRuntimeHandle, create_sqlite_runtime

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit"))


class SqliteFactory:
    """``create_in_memory_runtime`` with the same signature, over SQLite files."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.shared: dict[int, SqliteHost] = {}
        self.opened: list[SqliteHost] = []

    def __call__(
        self,
        instance_id: str | None = None,
        initial_time: int | None = None,
        *,
        backend: Any = None,
    ) -> tuple[InstanceRuntime, SqliteRuntimeHandle]:
        existing: SqliteHost | None = None
        if isinstance(backend, SqliteHost):
            existing = backend
        elif isinstance(backend, MemoryBackend):
            existing = self.shared.get(id(backend))
        if existing is not None:
            return create_sqlite_runtime("", instance_id, initial_time, backend=existing)
        path = f"{self.folder}/db{len(self.opened)}.sqlite"
        runtime, handle = create_sqlite_runtime(path, instance_id, initial_time)
        self.opened.append(handle.backend)
        if isinstance(backend, MemoryBackend):
            self.shared[id(backend)] = handle.backend
        return runtime, handle


@pytest.fixture(autouse=True)
def _over_sqlite(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    folder = tempfile.mkdtemp(prefix="durably-suite-")
    factory = SqliteFactory(folder)
    for module in list(sys.modules.values()):
        if getattr(module, "create_in_memory_runtime", None) is not None and getattr(
            module, "__file__", ""
        ).endswith(f"{Path(request.path).name.removesuffix('_sqlite.py')}.py"):
            monkeypatch.setattr(module, "create_in_memory_runtime", factory)
    monkeypatch.setitem(request.module.__dict__, "create_in_memory_runtime", factory)
    try:
        yield
    finally:
        for backend in factory.opened:
            backend.db.close_blocking()
        shutil.rmtree(folder, ignore_errors=True)
