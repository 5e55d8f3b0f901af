"""`tests/unit/test_state_machine.py`, run unchanged over PostgreSQL (see conftest.py)."""

from test_state_machine import *  # noqa: F403 - the same tests, collected again here
