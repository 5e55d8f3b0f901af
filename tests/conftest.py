"""Shared fixtures: ``tests.support.fixtures`` (the ``runtimes`` of every backend)."""

pytest_plugins = ["tests.support.fixtures"]
