"""The apps of the command-line tests: a module written into the test's folder."""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["app_module"]


@contextlib.contextmanager
def app_module(
    folder: Path, monkeypatch: pytest.MonkeyPatch, source: str, prefix: str
) -> Iterator[str]:
    """Write ``source`` as a new module in ``folder`` and make it importable; its name
    (new for each test, so its counters start afresh). The command runs as from a plain
    shell: no ``DURABLY_APP`` nor ``DURABLY_BACKEND``, 200 columns. Forgotten after."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    for variable in ("DURABLY_APP", "DURABLY_BACKEND"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    try:
        yield name
    finally:
        sys.modules.pop(name, None)
