"""`tests/unit/test_worked_example.py`, run unchanged over PostgreSQL (see conftest.py)."""

from test_worked_example import *  # noqa: F403 - the same tests, collected again here
