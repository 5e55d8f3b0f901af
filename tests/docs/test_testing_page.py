"""``docs/testing.md`` as a user reads it: its test files run under pytest, with the plugin.

The page promises a user's test file, written from it alone, with no import from
``durably.adapters`` or ``durably.containers``, that tests a workflow with a 30 s retry
back-off, a 30-day sleep and a step timeout in under a second: its ``<!-- pytest: -->``
blocks are written to a directory with its ``pyproject.toml`` and run by pytest there.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.docs.blocks import DOCS, Block, blocks_of

PAGE = DOCS / "testing.md"

TEST_PHASE_BOUND_S = 10.0
"""The page promises under 1 s; 10x that proves nothing waits for wall-clock time."""

FORBIDDEN = ("durably.adapters", "durably.containers")


def _test_files() -> list[Block]:
    return [block for block in blocks_of(PAGE) if block.pytest_file is not None]


def _imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            modules.add(node.module)
    return modules


def _test_functions(source: str) -> list[str]:
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    return [
        node.name
        for node in ast.parse(source).body
        if isinstance(node, functions) and node.name.startswith("test_")
    ]


def test_the_page_has_test_files_that_import_only_the_public_api() -> None:
    files = _test_files()
    assert {block.pytest_file for block in files} >= {"test_subscription.py", "test_quote.py"}
    for block in files:
        assert block.lang == "python", block.where
        imported = _imported_modules(block.text)
        assert not [m for m in imported if m.startswith(FORBIDDEN)], (block.where, imported)
        public = {"durably.testing", "durably.trackers"}
        assert not [m for m in imported if m.startswith("durably.") and m not in public], (
            block.where,
            imported,
        )


def test_the_main_example_has_a_retry_back_off_a_month_long_sleep_and_a_step_timeout() -> None:
    (main,) = [b for b in _test_files() if b.pytest_file == "test_subscription.py"]
    assert re.search(r'Retry\([^)]*delay="30s"', main.text)
    assert 'durably.sleep("30 days")' in main.text
    assert re.search(r'timeout="\d+s"', main.text)
    assert "durably_engine" in main.text
    assert "durably_clock" in main.text


def test_the_pages_test_files_pass_under_pytest(tmp_path: Path) -> None:
    expected: list[str] = []
    for block in _test_files():
        assert block.pytest_file is not None
        (tmp_path / block.pytest_file).write_text(block.text, encoding="utf-8")
        expected += _test_functions(block.text)
    for block in blocks_of(PAGE):
        if block.file_name is not None:  # the pyproject.toml the page asks for
            (tmp_path / block.file_name).write_text(block.text, encoding="utf-8")
    assert (tmp_path / "pyproject.toml").exists(), "the page shows its pytest settings"
    report = tmp_path / "report.xml"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DURABLY_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None, output
    cases = suite.findall("testcase")
    assert sorted(case.get("name", "") for case in cases) == sorted(expected), output
    for case in cases:
        assert case.find("skipped") is None, (case.get("name"), output)
    assert suite.get("failures") == "0"
    assert suite.get("errors") == "0"
    # The test phase: each test's setup, call and teardown (not pytest's own start-up).
    spent = sum(float(case.get("time", "0")) for case in cases)
    assert spent < TEST_PHASE_BOUND_S, f"the page's tests took {spent:.2f} s"
