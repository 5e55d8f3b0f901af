"""`tests/unit/test_sleeps.py`, run unchanged over PostgreSQL (see conftest.py)."""

from test_sleeps import *  # noqa: F403 - the same tests, collected again here
