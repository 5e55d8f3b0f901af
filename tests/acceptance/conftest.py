"""Acceptance tests: make ``tests.*`` importable (the CLI runner, the PostgreSQL helpers)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parents[2])
if REPO_ROOT not in sys.path:
    sys.path.append(REPO_ROOT)
