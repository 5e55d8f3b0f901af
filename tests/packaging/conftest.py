"""Packaging tests: the session's venv with durably installed from its wheel."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parents[2])
if REPO_ROOT not in sys.path:  # as tests/docs does, for ``tests.packaging.wheel_venv``
    sys.path.append(REPO_ROOT)

from tests.packaging.wheel_venv import wheel_venv  # noqa: E402

__all__ = ["wheel_venv"]
