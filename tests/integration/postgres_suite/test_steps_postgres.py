"""`tests/unit/test_steps.py`, run unchanged over PostgreSQL (see conftest.py)."""

from test_steps import *  # noqa: F403 - the same tests, collected again here
