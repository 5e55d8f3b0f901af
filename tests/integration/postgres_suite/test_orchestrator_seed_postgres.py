"""`tests/unit/test_orchestrator_seed.py`, run unchanged over PostgreSQL (see conftest.py)."""

from test_orchestrator_seed import *  # noqa: F403 - the same tests, collected again here
