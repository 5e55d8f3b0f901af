"""The layer table of architecture.md, enforced on every import of ``src/durably``.

| layer      | package              | may import                              |
|------------|----------------------|-----------------------------------------|
| domain     | ``durably.domain``     | nothing of durably above it             |
| ports      | ``durably.ports``      | domain                                  |
| adapters   | ``durably.adapters``   | domain, ports                           |
| services   | ``durably.services``   | domain, ports                           |
| primitives | ``durably.primitives`` | domain, ports, ``durably.services.context`` |
| containers | ``durably.containers`` | everything below                        |
| engine     | ``durably.engine``     | containers and below                    |
| cli        | ``durably.cli*``       | engine                                  |

Only ``containers`` imports ``dependency_injector``, and nothing uses its wiring. Two
parts of the package are not in the table and are placed here: the testing kit
(``durably.testing``) sits beside ``cli``, over the engine; the public modules
(``durably``, ``durably.errors``, ``durably.status``, ...) re-export the layers and sit
on top of everything, so no layer imports them. Every import counts, wherever it is
written (module level, in a function, under ``TYPE_CHECKING``): each one is a
dependency of the source.

``KNOWN_VIOLATIONS`` lists the imports of today's code that the table forbids, each
with why it is there; the test fails on any other one, and on an entry that is no
longer needed, so the list can only shrink.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "durably"

# The order is the table's, bottom to top.
LAYERS: dict[str, tuple[str, ...]] = {
    "domain": ("durably.domain",),
    "ports": ("durably.ports",),
    "adapters": ("durably.adapters",),
    "services": ("durably.services",),
    "primitives": ("durably.primitives",),
    "containers": ("durably.containers",),
    "engine": ("durably.engine",),
    "cli": (
        "durably.cli",
        "durably.cli_app",
        "durably.cli_format",
        "durably.cli_inspect",
        "durably.cli_operator",
    ),
    "testing": ("durably.testing",),
    "public": (
        "durably",
        "durably.__main__",
        "durably.errors",
        "durably.events",
        "durably.status",
        "durably.trackers",
        "durably.transitions",
        "durably.types",
    ),
}

BELOW_ENGINE = frozenset({"domain", "ports", "adapters", "services", "primitives", "containers"})

MAY_IMPORT: dict[str, frozenset[str]] = {
    "domain": frozenset(),
    "ports": frozenset({"domain"}),
    "adapters": frozenset({"domain", "ports"}),
    "services": frozenset({"domain", "ports"}),
    "primitives": frozenset({"domain", "ports"}),  # and durably.services.context, below
    "containers": frozenset({"domain", "ports", "adapters", "services", "primitives"}),
    "engine": BELOW_ENGINE,
    "cli": frozenset({"engine"}),
    "testing": BELOW_ENGINE | {"engine"},
    "public": BELOW_ENGINE | {"engine", "cli", "testing"},
}

# Single modules a layer may import beyond the layers it may import.
MAY_ALSO_IMPORT: dict[str, frozenset[str]] = {"primitives": frozenset({"durably.services.context"})}

DI_LAYER = "containers"

_PRIMITIVES_RUN_SERVICES = (
    "a primitive is the body-side half of a service: step(), sleep() and the event "
    "primitives hand their work to services.steps/sleeps/workflow_events, and workflow() "
    "builds a WorkflowDefinition and, for a direct call, a state machine and event emitter"
)
_CLI_READS_DOMAIN = (
    "the CLI parses durations and JSON input and prints statuses, errors and records with "
    "the domain's own types and converter, which the engine does not re-export"
)

KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {
    ("durably.primitives.children", "durably.services.children"): _PRIMITIVES_RUN_SERVICES,
    ("durably.primitives.children", "durably.services.definition"): _PRIMITIVES_RUN_SERVICES,
    ("durably.primitives.children", "durably.services.gather"): _PRIMITIVES_RUN_SERVICES,
    ("durably.primitives.context", "durably.services.steps"): _PRIMITIVES_RUN_SERVICES,
    ("durably.primitives.events", "durably.services.workflow_events"): _PRIMITIVES_RUN_SERVICES,
    ("durably.primitives.sleep", "durably.services.sleeps"): _PRIMITIVES_RUN_SERVICES,
    ("durably.primitives.step", "durably.services.steps"): _PRIMITIVES_RUN_SERVICES,
    ("durably.primitives.versioning", "durably.services.versioning"): _PRIMITIVES_RUN_SERVICES,
    ("durably.primitives.workflow", "durably.services.definition"): _PRIMITIVES_RUN_SERVICES,
    ("durably.primitives.workflow", "durably.services.state_machine"): _PRIMITIVES_RUN_SERVICES,
    ("durably.primitives.workflow", "durably.services.trackers"): _PRIMITIVES_RUN_SERVICES,
    ("durably.cli", "durably.domain.errors"): _CLI_READS_DOMAIN,
    ("durably.cli", "durably.domain.redaction"): _CLI_READS_DOMAIN,
    ("durably.cli", "durably.domain.status"): _CLI_READS_DOMAIN,
    ("durably.cli_app", "durably.domain.durations"): _CLI_READS_DOMAIN,
    ("durably.cli_app", "durably.domain.json_fit"): _CLI_READS_DOMAIN,
    ("durably.cli_app", "durably.domain.redaction"): _CLI_READS_DOMAIN,
    ("durably.cli_app", "durably.domain.serialization"): _CLI_READS_DOMAIN,
    ("durably.cli_app", "durably.domain.status"): _CLI_READS_DOMAIN,
    ("durably.cli_app", "durably.services.definition"): _CLI_READS_DOMAIN,
    ("durably.cli_format", "durably.domain.errors"): _CLI_READS_DOMAIN,
    ("durably.cli_format", "durably.domain.serialization"): _CLI_READS_DOMAIN,
    ("durably.cli_format", "durably.domain.status"): _CLI_READS_DOMAIN,
    ("durably.cli_format", "durably.services.types"): _CLI_READS_DOMAIN,
    ("durably.cli_inspect", "durably.domain.errors"): _CLI_READS_DOMAIN,
    ("durably.cli_operator", "durably.domain.errors"): _CLI_READS_DOMAIN,
    ("durably.cli_inspect", "durably.domain.serialization"): _CLI_READS_DOMAIN,
    ("durably.cli_inspect", "durably.domain.status"): _CLI_READS_DOMAIN,
    ("durably.cli_inspect", "durably.services.types"): _CLI_READS_DOMAIN,
}


@attrs.frozen
class Import:
    """One import statement's target, as the importing module sees it."""

    importer: str
    imported: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer} imports {self.imported} (line {self.line})"


def module_name(path: Path, src: Path = SRC) -> str:
    """The dotted name of the module at ``path`` under ``src``."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: Path = PACKAGE, src: Path = SRC) -> dict[str, Path]:
    """Every module of the package, by name."""
    return {module_name(p, src): p for p in sorted(package.rglob("*.py"))}


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[Import]:
    """What the module ``name`` imports: modules of ``known`` where the import names one."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                yield Import(name, submodule if submodule in known else target, node.lineno)


def layer_of(name: str) -> str | None:
    """The layer of a durably module (the longest matching package), else ``None``."""
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), layer)
    return best[1] if best is not None else None


def all_imports() -> list[Import]:
    """Every import written in ``src/durably``."""
    known = modules()
    return [found for name, path in known.items() for found in imports_of(name, path, known)]


def forbidden(found: Import) -> bool:
    """Whether the table forbids ``found`` (an import of one durably module by another)."""
    source, target = layer_of(found.importer), layer_of(found.imported)
    if source is None or target is None or source == target:
        return False
    return target not in MAY_IMPORT[source] and found.imported not in MAY_ALSO_IMPORT.get(
        source, frozenset()
    )


def wiring_markers(package: Path = PACKAGE, src: Path = SRC) -> list[str]:
    """Where a module names ``inject`` or ``Provide``, the markers of DI's wiring."""
    markers = {"inject", "Provide"}
    found = []
    for name, path in modules(package, src).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            used = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
            if used in markers:
                found.append(f"{name}: {used} (line {getattr(node, 'lineno', '?')})")
    return found


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The cycles of a directed graph, each as the path that closes it."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            found.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])
    return found


# -- the package's layout ------------------------------------------------------------------


def test_every_module_of_the_package_is_in_one_layer() -> None:
    names = modules()
    assert len(names) > 50  # the package was found
    assert [name for name in names if layer_of(name) is None] == []


def test_every_layer_of_the_table_has_modules() -> None:
    layers = {layer_of(name) for name in modules()}
    assert layers == set(LAYERS)


# -- the table -----------------------------------------------------------------------------


def test_no_import_crosses_the_layers_against_the_table() -> None:
    violations = {
        (found.importer, found.imported): str(found) for found in all_imports() if forbidden(found)
    }
    new = sorted(text for pair, text in violations.items() if pair not in KNOWN_VIOLATIONS)
    assert new == [], "imports the layer table of architecture.md forbids"
    fixed = sorted(f"{a} -> {b}" for a, b in KNOWN_VIOLATIONS if (a, b) not in violations)
    assert fixed == [], "KNOWN_VIOLATIONS entries no longer needed: remove them"


def test_there_is_no_import_cycle_between_layers() -> None:
    edges = set()
    for found in all_imports():
        source, target = layer_of(found.importer), layer_of(found.imported)
        if source is not None and target is not None and source != target:
            edges.add((source, target))
    assert ("services", "adapters") not in edges
    assert cycles(edges) == []


def test_only_containers_import_dependency_injector_and_nothing_uses_its_wiring() -> None:
    di = [
        found
        for found in all_imports()
        if found.imported == "dependency_injector"
        or found.imported.startswith("dependency_injector.")
    ]
    assert di, "the containers import dependency_injector"
    assert [str(f) for f in di if layer_of(f.importer) != DI_LAYER] == []
    assert [str(f) for f in di if f.imported.startswith("dependency_injector.wiring")] == []
    assert wiring_markers() == []


# -- the checker itself: it sees what it must see ------------------------------------------


@pytest.mark.parametrize(
    ("importer", "imported", "expected"),
    [
        ("durably.services.executor", "durably.adapters.memory", True),
        ("durably.services.executor", "durably.domain.keys", False),
        ("durably.domain.keys", "durably.ports", True),
        ("durably.ports.storage", "durably.services.types", True),
        ("durably.primitives.step", "durably.services.context", False),
        ("durably.primitives.step", "durably.containers", True),
        ("durably.engine.engine", "durably.containers.root", False),
        ("durably.engine.engine", "durably.cli", True),
        ("durably.containers.root", "durably.engine", True),
        ("durably.adapters.memory", "durably", True),
        ("durably.cli", "durably.engine.config", False),
        ("durably", "durably.engine", False),
    ],
)
def test_the_table_forbids_what_it_should(importer: str, imported: str, expected: bool) -> None:
    assert forbidden(Import(importer, imported, 1)) is expected


def test_relative_and_from_imports_name_the_module_they_reach(tmp_path: Path) -> None:
    package = tmp_path / "durably" / "services"
    package.mkdir(parents=True)
    (tmp_path / "durably" / "__init__.py").write_text("")
    (tmp_path / "durably" / "adapters.py").write_text("")
    (package / "__init__.py").write_text("from . import executor\n")
    (package / "executor.py").write_text(
        "from .. import adapters\nfrom ..adapters import x\nimport durably.adapters\n"
        "def f():\n    from durably import adapters\n"
    )
    known = modules(tmp_path / "durably", tmp_path)
    found = [
        str(i)
        for name, path in sorted(known.items())
        for i in imports_of(name, path, known)
        if name == "durably.services.executor"
    ]
    assert found == [
        "durably.services.executor imports durably.adapters (line 1)",
        "durably.services.executor imports durably.adapters (line 2)",
        "durably.services.executor imports durably.adapters (line 3)",
        "durably.services.executor imports durably.adapters (line 5)",
    ]
    (init,) = [i for i in imports_of("durably.services", package / "__init__.py", known)]
    assert init.imported == "durably.services.executor"


def test_wiring_markers_are_found(tmp_path: Path) -> None:
    (tmp_path / "durably").mkdir()
    (tmp_path / "durably" / "__init__.py").write_text(
        "from dependency_injector.wiring import Provide, inject\n"
        "@inject\ndef f(x=Provide['x']): ...\n"
        "def g(x=wiring.Provide['y']): ...\n"
    )
    assert wiring_markers(tmp_path / "durably", tmp_path) == [
        "durably: inject (line 2)",
        "durably: Provide (line 3)",
        "durably: Provide (line 4)",
    ]


def test_a_cycle_between_layers_is_found() -> None:
    assert cycles({("a", "b"), ("b", "c"), ("c", "a")}) == [["a", "b", "c", "a"]]
    assert cycles({("a", "b"), ("b", "c"), ("a", "c")}) == []
