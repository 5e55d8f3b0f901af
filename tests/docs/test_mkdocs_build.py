"""The user guide builds with ``mkdocs build --strict``: no warning, every page in the nav."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.docs.blocks import DOCS, ROOT


def _nav_pages(nav: list[Any]) -> set[str]:
    pages: set[str] = set()
    for entry in nav:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            pages |= _nav_pages(value) if isinstance(value, list) else {str(value)}
    return pages


def _config() -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert isinstance(config, dict)
    return config


def test_every_page_is_in_the_nav() -> None:
    nav = _nav_pages(_config()["nav"])
    pages = {path.name for path in DOCS.glob("*.md")}
    assert pages == nav, f"pages missing from the nav: {pages - nav}; unknown: {nav - pages}"


def test_the_build_is_strict_and_offline() -> None:
    config = _config()
    assert config["strict"] is True
    assert config["theme"].get("highlightjs") is False, "highlight.js would come from a CDN"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    for module in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(
                f"{module} is not installed: install the docs extra "
                "(pip install -e '.[dev,docs]', or `make docs`)"
            )
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output, output
    for page in DOCS.glob("*.md"):
        assert (site / f"{page.stem}.html").exists(), f"{page.name} was not built"
    reference = (site / "reference.html").read_text(encoding="utf-8")
    for name in (
        "durably.engine.Engine.run_worker",
        "durably.primitives.step.step",
        "durably.testing.create_in_memory_runtime",
        "durably.testing.VirtualClock.advance",
        "durably.testing.crash_after",
        "durably.errors.RetryExhaustedError",
        "durably.trackers.InMemoryTracker",
        "durably.containers.WorkflowLayer",
    ):
        assert f'id="{name}"' in reference, f"{name} is missing from the API reference"
