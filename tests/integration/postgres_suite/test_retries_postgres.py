"""`tests/unit/test_retries.py`, run unchanged over PostgreSQL (see conftest.py)."""

from test_retries import *  # noqa: F403 - the same tests, collected again here
