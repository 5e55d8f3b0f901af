"""`tests/unit/test_recovery.py`, run unchanged over SQLite (see this folder's conftest)."""

from test_recovery import *  # noqa: F403 - the same tests, collected again here
