"""Packaging tests: the session's venv with durably installed from its wheel."""

from __future__ import annotations

from tests.packaging.wheel_venv import wheel_venv

__all__ = ["wheel_venv"]
