"""`tests/unit/test_recovery_flow.py`, run unchanged over PostgreSQL (see conftest.py)."""

from test_recovery_flow import *  # noqa: F403 - the same tests, collected again here
