"""`tests/unit/test_events.py`, run unchanged over PostgreSQL (see conftest.py)."""

from test_events import *  # noqa: F403 - the same tests, collected again here
