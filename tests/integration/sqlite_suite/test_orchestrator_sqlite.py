"""`tests/unit/test_orchestrator.py`, run unchanged over SQLite (see this folder's conftest)."""

from test_orchestrator import *  # noqa: F403 - the same tests, collected again here
