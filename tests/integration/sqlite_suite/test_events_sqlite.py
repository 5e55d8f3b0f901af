"""`tests/unit/test_events.py`, run unchanged over SQLite (see this folder's conftest)."""

from test_events import *  # noqa: F403 - the same tests, collected again here
