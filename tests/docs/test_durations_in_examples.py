"""Every example writes its durations with a unit (or a ``timedelta``), never a bare number.

A bare number is milliseconds (``durably.sleep(5)`` is 5 ms): an example that writes one
teaches the mistake. Checked on the syntax tree of every python block of the docs and the
README, and of ``examples/*.py``.
"""

from __future__ import annotations

import ast

import pytest

from tests.docs.blocks import ROOT, python_blocks

DURATION_KEYWORDS = frozenset(
    {
        "timeout",  # step(..., timeout=), Engine.result(..., timeout=)
        "delay",  # Retry(delay=), Purge(delay=)
        "max_duration",
        "duration",  # Lease(duration=)
        "renew_every",
        "poll_interval",
        "flush_interval",
        "close_timeout",
        "base",  # Backoff.exponential(base=, max=)
        "initial",  # Backoff.linear(initial=, increment=, max=)
        "increment",
        "max",
    }
)
DURATION_FIRST_ARGUMENT = frozenset({"sleep", "constant"})
"""``durably.sleep(d)`` and ``Backoff.constant(d)``."""
NOT_DURABLY = frozenset({"asyncio", "time", "trio", "anyio"})
"""Modules whose ``sleep`` and ``timeout`` take seconds: not durably's durations."""


def _is_number(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    )


def _callee(call: ast.Call) -> tuple[str | None, str]:
    """(the module or object a call goes through, the called name)."""
    func = call.func
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        return owner, func.attr
    if isinstance(func, ast.Name):
        return None, func.id
    return None, ""


def bare_durations(source: str) -> list[str]:
    """The calls of ``source`` that pass a duration as a bare number."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        owner, name = _callee(node)
        if owner in NOT_DURABLY:
            continue
        bad = [
            f"{name}(..., {kw.arg}={ast.unparse(kw.value)})"
            for kw in node.keywords
            if kw.arg in DURATION_KEYWORDS and _is_number(kw.value)
        ]
        if name in DURATION_FIRST_ARGUMENT and node.args and _is_number(node.args[0]):
            bad.append(f"{name}({ast.unparse(node.args[0])})")
        found += [f"line {node.lineno}: {b}" for b in bad]
    return found


def sources() -> list[tuple[str, str]]:
    blocks = [(b.where, b.text) for b in python_blocks()]
    scripts = [
        (str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))
        for p in sorted((ROOT / "examples").glob("*.py"))
    ]
    return blocks + scripts


@pytest.mark.parametrize(("where", "source"), sources(), ids=[w for w, _ in sources()])
def test_examples_write_durations_with_a_unit(where: str, source: str) -> None:
    assert bare_durations(source) == [], f"{where}: a bare number is milliseconds"


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("await durably.sleep(5)", ["line 1: sleep(5)"]),
        ("durably.step('x', f, timeout=30)", ["line 1: step(..., timeout=30)"]),
        ("Retry(2, delay=1.5)", ["line 1: Retry(..., delay=1.5)"]),
        ("Backoff.constant(100)", ["line 1: constant(100)"]),
        ("Backoff.exponential(base=100, max='30s')", ["line 1: exponential(..., base=100)"]),
        ("Purge(delay=60000)", ["line 1: Purge(..., delay=60000)"]),
        ("await durably.sleep('5s')", []),
        ("await durably.sleep(datetime.timedelta(seconds=5))", []),
        ("await asyncio.sleep(0.05)", []),  # seconds, and not durably's
        ("asyncio.wait_for(x, timeout=5)", []),
        ("Retry(max_attempts=3)", []),
    ],
)
def test_the_check_finds_bare_numbers(source: str, bad: list[str]) -> None:
    assert bare_durations(source) == bad
