"""`tests/unit/test_recovery.py`, run unchanged over PostgreSQL (see conftest.py)."""

from test_recovery import *  # noqa: F403 - the same tests, collected again here
