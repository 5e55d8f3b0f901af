"""`tests/unit/test_orchestrator.py`, run unchanged over PostgreSQL (see conftest.py)."""

from test_orchestrator import *  # noqa: F403 - the same tests, collected again here
