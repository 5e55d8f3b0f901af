"""`tests/unit/test_retries.py`, run unchanged over SQLite (see this folder's conftest)."""

from test_retries import *  # noqa: F403 - the same tests, collected again here
