"""`tests/unit/test_purge.py`, run unchanged over SQLite (see this folder's conftest)."""

from test_purge import *  # noqa: F403 - the same tests, collected again here
