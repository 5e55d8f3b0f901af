"""`tests/unit/test_steps.py`, run unchanged over SQLite (see this folder's conftest)."""

from test_steps import *  # noqa: F403 - the same tests, collected again here
