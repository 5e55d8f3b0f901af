"""One import path per name in the documentation, and never ``durably.adapters``."""

from __future__ import annotations

import ast
import re

from tests.docs.blocks import documented_files, python_blocks


def test_each_name_is_imported_from_one_module_in_all_the_docs() -> None:
    modules: dict[str, set[str]] = {}
    for block in python_blocks():
        for node in ast.walk(ast.parse(block.text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("durably"):
                for alias in node.names:
                    modules.setdefault(alias.name, set()).add(node.module or "")
    assert {name: found for name, found in modules.items() if len(found) > 1} == {}
    assert "ManualClock" in modules  # the check sees the imports it is about


def test_the_docs_never_name_an_adapter_module() -> None:
    """Adapters are the package's inside: a user imports from ``durably``, ``durably.testing``,
    ``durably.trackers`` (paths to source files, ``src/durably/adapters/``, are fine)."""
    for path in documented_files():
        text = path.read_text(encoding="utf-8")
        found = re.findall(r"durably\.adapters\b[\w.]*", text)
        assert found == [], f"{path.name}: {found}"
