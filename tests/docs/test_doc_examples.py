"""Every python example of ``docs/*.md`` and ``README.md`` runs (see ``blocks.py``)."""

from __future__ import annotations

import asyncio
import inspect
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tests.docs.blocks import DOCS, ROOT, Block, blocks_of, documented_files, python_blocks

MAX_NOT_RUN = 3
"""Deliberately partial examples are the exception: each one is a place a reader can be
misled without any test noticing."""

BROKEN: dict[str, str] = {}
"""Examples known to be wrong, by file: a strict xfail, so fixing one fails until it is
removed from here. Empty: every example runs."""

BLOCKS = python_blocks()


def _params() -> list[object]:
    params: list[object] = []
    for block in BLOCKS:
        if block.pytest_file is not None:
            continue  # a test file of a user's project: pytest runs it (test_testing_page.py)
        reason = BROKEN.get(block.path.name)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(block, id=block.where, marks=marks))
    return params


def test_the_documentation_has_examples() -> None:
    pages = {block.path.name for block in BLOCKS}
    for page in ("quickstart.md", "concepts.md", "containers.md", "testing.md", "README.md"):
        assert page in pages, f"{page} has no python example"


def test_not_run_markers_are_few_and_explained() -> None:
    markers = [b for path in documented_files() for b in blocks_of(path) if b.not_run is not None]
    assert len(markers) <= MAX_NOT_RUN, [m.where for m in markers]
    for marker in markers:
        assert len(marker.not_run or "") >= 10, f"{marker.where}: say why it is not run"


def test_markers_stand_before_a_code_block() -> None:
    for path in documented_files():
        text = path.read_text(encoding="utf-8")
        marked = text.count("<!-- not-run:") + text.count("<!-- file:") + text.count("<!-- pytest:")
        found = [
            b for b in blocks_of(path) if b.not_run is not None or b.file_name or b.pytest_file
        ]
        assert len(found) == marked, f"{path.name}: a marker is not followed by a code block"


def test_console_sessions_are_only_on_pages_whose_tests_replay_them() -> None:
    replayed = {DOCS / "cli.md", DOCS / "quickstart.md"}
    for path in documented_files():
        for block in blocks_of(path):
            if block.lang == "console" and block.not_run is None:
                assert path in replayed, f"{block.where}: use ```sh (or replay it in a test)"


def _call_tests(module: types.ModuleType) -> None:
    """Call the block's top-level ``test_*`` functions, as pytest would."""
    for name, value in list(vars(module).items()):
        if name.startswith("test_") and inspect.isfunction(value):
            if inspect.iscoroutinefunction(value):
                asyncio.run(value())
            else:
                value()


def _run(block: Block, directory: Path) -> None:
    """Run ``block`` as a module of its own."""
    name = f"doc_example_{block.path.stem}_{block.line}".replace("-", "_")
    module = types.ModuleType(name)
    module.__file__ = str(directory / f"{name}.py")
    sys.modules[name] = module
    try:
        # Leading newlines: a traceback names the line of the Markdown file.
        code = compile("\n" * (block.line - 1) + block.text, str(block.path), "exec")
        exec(code, module.__dict__)
        _call_tests(module)
    finally:
        del sys.modules[name]


@pytest.mark.parametrize("block", _params())
def test_example_runs(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if block.not_run is not None:
        # Illustrative only (another host, an app of the reader's): it must still compile.
        compile(block.text, block.where, "exec")
        return
    shutil.copytree(ROOT / "containers", tmp_path / "containers")  # profiles, as in a checkout
    monkeypatch.chdir(tmp_path)
    for variable in ("DURABLY_APP", "DURABLY_BACKEND"):
        monkeypatch.delenv(variable, raising=False)
    _run(block, tmp_path)
    printed = capsys.readouterr().out
    # An example shows what works: a printed Failure container means it is broken.
    assert "<Failure" not in printed, f"{block.where} printed a Failure:\n{printed}"


def test_examples_pass_ruff(tmp_path: Path) -> None:
    """Examples are code users copy: no unused import, no undefined name, formatted."""
    for block in BLOCKS:
        if block.path.name in BROKEN:
            continue
        name = f"{block.path.stem}_{block.line}.py".replace("-", "_")
        (tmp_path / name).write_text(block.text, encoding="utf-8")
    ruff = Path(sys.executable).parent / "ruff"
    config = str(ROOT / "pyproject.toml")
    # I001: in a user's project durably is a third-party import, here it is first-party.
    check = [str(ruff), "check", "--config", config, "--ignore", "I001", str(tmp_path)]
    done = subprocess.run(check, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    style = [str(ruff), "format", "--check", "--config", config, str(tmp_path)]
    done = subprocess.run(style, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
