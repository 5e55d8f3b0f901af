"""`tests/unit/test_purge.py`, run unchanged over PostgreSQL (see conftest.py)."""

from test_purge import *  # noqa: F403 - the same tests, collected again here
