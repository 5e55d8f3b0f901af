"""`tests/unit/test_sleeps.py`, run unchanged over SQLite (see this folder's conftest)."""

from test_sleeps import *  # noqa: F403 - the same tests, collected again here
