"""durably against DBOS Transact, on SQLite and on PostgreSQL, in one run.

Scenarios (one module each under ``scenarios/``): ``sequential``, ``long``,
``concurrent``, ``recovery``, ``event_latency``, ``event_fanout``, ``child_fanout``,
``parallel_steps``, ``queue_throughput``, ``idle_worker`` and ``floor``. The last four
but one (issues 17 and 18) run ``durably`` and ``dbos`` only, each as shipped. Every
repetition of every engine runs in a fresh child process (three for ``recovery``, two for
``event_latency``) over a fresh database (a new SQLite folder, a new PostgreSQL database
that is dropped after it), and the order of the engines is reversed at every repetition,
so that neither always runs first on a warm or a cold machine.

Engines: ``durably`` (SQLite WAL + synchronous=FULL; PostgreSQL), ``durably_normal``
(SQLite WAL + synchronous=NORMAL), ``dbos`` (DBOS as shipped: on SQLite its rollback
journal at SQLite's default synchronous=FULL; PostgreSQL), ``dbos_wal`` (DBOS with its
SQLite database in WAL, synchronous=FULL), ``dbos_poll`` (DBOS as shipped but for its
notification listener, polling SQLite every ``EVENT_POLL_S`` as durably's worker does in
the event scenarios; those run ``durably``, ``dbos`` and ``dbos_poll`` only) and
``floor`` (the backend's bare commit).
PostgreSQL runs with the server's ``synchronous_commit`` (``on``, read back and recorded).

The table shows, per scenario, backend and engine, the median, min and max of the
repetitions, then the durably/DBOS and durably/floor ratios (times: below 1 means
durably is faster) and the issue's targets. Everything is written to
``benchmarks/results/latest.json``: a run of some scenarios or backends replaces
their rows there and keeps the others' (``runs`` says which run measured what;
``--replace`` overwrites the file instead).

Run: ``make bench`` or ``.venv/bin/python benchmarks/compare.py [--quick] [--repeats N]
[--scenarios a,b] [--backends sqlite,postgres] [--engines a,b] [--out PATH]
[--replace] [--tree LABEL=PATH]``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from scenarios import event_latency, recovery
from scenarios.common import EVENT_POLL_S, SQLITE_ONLY, Sizes, Target
from scenarios.process import TREES, run_child

HERE = Path(__file__).resolve().parent
SCENARIOS = (
    "sequential",
    "long",
    "concurrent",
    "recovery",
    "event_latency",
    "event_fanout",
    "child_fanout",
    "parallel_steps",
    "queue_throughput",
    "idle_worker",
    "floor",
)
BACKENDS = ("sqlite", "postgres")
# The order of the first repetition; every other repetition runs them in reverse.
ENGINES = ("durably", "dbos", "durably_normal", "dbos_wal")
# The event scenarios compare durably with DBOS's send/recv as shipped and polling as
# often as durably's worker.
EVENT_SCENARIOS = ("event_latency", "event_fanout")
EVENT_ENGINES = ("durably", "dbos", "dbos_poll")
# The scenarios of children, parallel steps and queues compare the engines as shipped.
PLAIN_SCENARIOS = ("child_fanout", "parallel_steps", "queue_throughput", "idle_worker")
PLAIN_ENGINES = ("durably", "dbos")
METRICS = {
    "sequential": ("s_per_step", "s"),
    "long": ("s_per_step", "s"),
    "concurrent": ("s_total", "s"),
    "recovery": ("s_to_all_done", "s"),
    "event_latency": ("s_latency_median", "s"),
    "event_fanout": ("s_total", "s"),
    "child_fanout": ("s_total", "s"),
    "parallel_steps": ("s_total", "s"),
    "queue_throughput": ("s_total", "s"),
    "idle_worker": ("stmts_per_s", "per_s"),
    "floor": ("s_per_commit", "s"),
}
# Figures that get rows of their own (and ratios) beside the scenario's metric.
EXTRA_METRICS = {
    "event_latency": (("s_latency_p99", "s"),),
    "idle_worker": (
        ("stmts_per_poll_interval", "count_f"),
        ("client_stmts_per_s", "per_s"),
        ("stmts_per_step", "count_f"),
        ("client_stmts_per_step", "count_f"),
    ),
}
SERVER = os.environ.get("DURABLY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


# -- targets ------------------------------------------------------------------------------


class Targets:
    """Fresh SQLite folders and PostgreSQL databases, one per repetition."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="durably-bench-")
        self.count = 0

    def make(self, backend: str) -> Target:
        self.count += 1
        folder = os.path.join(self.root, f"run-{self.count:04d}")
        os.mkdir(folder)
        if backend == "sqlite":
            return Target("sqlite", folder=folder)
        name = f"durably_bench_{os.getpid()}_{self.count:04d}"
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return Target("postgres", folder=folder, dsn=f"{SERVER}/{name}")

    def drop(self, target: Target) -> None:
        if target.dsn is not None:
            name = target.dsn.rsplit("/", 1)[1]
            with _admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if target.folder is not None:
            shutil.rmtree(target.folder, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _admin() -> Any:
    import psycopg

    return psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=5)


def _postgres_reachable() -> str | None:
    """None when the server answers, else why not."""
    try:
        with _admin() as conn:
            conn.execute("SELECT 1")
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


# -- one repetition ----------------------------------------------------------------------------


def _engines(
    scenario: str, backend: str, wanted: set[str] | None, floor_beside: bool = False
) -> list[str]:
    """The engines of one repetition; with ``floor_beside``, a floor run too, for the
    per-step scenarios: their ratio to the floor then compares runs of the same minutes
    (the disk's fsync latency moves from minute to minute)."""
    if scenario == "floor":
        return ["floor"]
    every = (
        EVENT_ENGINES
        if scenario in EVENT_SCENARIOS
        else PLAIN_ENGINES
        if scenario in PLAIN_SCENARIOS
        else ENGINES
    )
    engines = [e for e in every if backend == "sqlite" or e not in SQLITE_ONLY]
    engines = [e for e in engines if wanted is None or e in wanted]
    if "durably" in engines:
        engines[engines.index("durably") + 1 : engines.index("durably") + 1] = [
            f"durably@{label}" for label in TREES
        ]
    if floor_beside and METRICS[scenario][0] == "s_per_step":
        engines.append("floor")
    return engines


def _metric(scenario: str, engine: str) -> tuple[str, str]:
    """The metric of ``engine``'s runs in ``scenario`` (a floor run measures commits)."""
    return METRICS["floor"] if engine == "floor" else METRICS[scenario]


def _once(
    targets: Targets, scenario: str, backend: str, engine: str, sizes: Sizes
) -> dict[str, Any]:
    target = targets.make(backend)
    try:
        if scenario == "recovery":
            return recovery.drive(engine, target, sizes)
        if scenario == "event_latency":
            return event_latency.drive(engine, target, sizes)
        if engine == "floor":
            return run_child("floor", "floor", target, sizes)
        return run_child(scenario, engine, target, sizes)
    finally:
        targets.drop(target)


# -- machine and versions ----------------------------------------------------------------------


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "load_average_at_start": list(os.getloadavg()),
        "temp_dir": tempfile.gettempdir(),
    }


def _versions(postgres: str | None) -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "durably": _version("durably"),
        "dbos": _version("dbos"),
        "sqlalchemy": _version("sqlalchemy"),
        "psycopg": _version("psycopg"),
        "sqlite": sqlite3.sqlite_version,
        "postgres_server": postgres,
    }


# -- figures ------------------------------------------------------------------------------------


def _row(
    scenario: str, backend: str, engine: str, metric: str, unit: str, values: list[float]
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "backend": backend,
        "engine": engine,
        "metric": metric,
        "unit": unit,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "repeats": len(values),
        "samples": values,
    }


def _aggregate(samples: dict[tuple[str, str, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for (scenario, backend, engine), runs in samples.items():
        if not runs:
            continue
        metric, unit = _metric(scenario, engine)
        extra = EXTRA_METRICS.get(scenario, ())
        figures = [r["figures"] for r in runs]
        row = _row(scenario, backend, engine, metric, unit, [f[metric] for f in figures])
        own_rows = {metric, "completed_step_repeats", *(m for m, _ in extra)}
        details = {
            k: statistics.median(f[k] for f in figures)
            for k in figures[0]
            if k not in own_rows and k in figures[-1]
        }
        if details:
            row["details_median"] = details
        rows.append(row)
        for name, name_unit in extra:
            rows.append(
                _row(scenario, backend, engine, name, name_unit, [f[name] for f in figures])
            )
        if scenario == "recovery":
            repeats = [float(f["completed_step_repeats"]) for f in figures]
            rows.append(_row(scenario, backend, engine, "completed_step_repeats", "count", repeats))
    return rows


def _find(
    rows: list[dict[str, Any]],
    scenario: str,
    backend: str,
    engine: str,
    metric: str | None = None,
) -> Any:
    """The row of ``metric`` (by default the scenario's own) of one engine."""
    wanted = metric if metric is not None else _metric(scenario, engine)[0]
    for r in rows:
        if (r["scenario"], r["backend"], r["engine"], r["metric"]) == (
            scenario,
            backend,
            engine,
            wanted,
        ):
            return r
    return None


def _ratios(rows: list[dict[str, Any]], floors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """durably's medians over DBOS's and over the floor's (``durably_normal`` over the
    floor at its own setting, WAL + NORMAL)."""
    normal_floor = next((f for f in floors if f["metric"] == "s_per_commit_wal_normal"), None)
    out: list[dict[str, Any]] = []
    pairs = [
        (scenario, metric)
        for scenario in SCENARIOS
        if scenario != "floor"
        for metric in (METRICS[scenario][0], *(m for m, _ in EXTRA_METRICS.get(scenario, ())))
    ]
    for scenario, metric in pairs:
        for backend in BACKENDS:
            for ours in ("durably", "durably_normal", *(f"durably@{label}" for label in TREES)):
                mine = _find(rows, scenario, backend, ours, metric)
                if mine is None:
                    continue
                versus: list[tuple[str, Any]] = [
                    (other, _find(rows, scenario, backend, other, metric))
                    for other in ("dbos", "dbos_wal", "dbos_poll")
                ]
                if "@" in ours:  # another tree: against this one's durably too
                    versus.append(("durably", _find(rows, scenario, backend, "durably", metric)))
                if METRICS[scenario][0] == "s_per_step":
                    # The floor measured in the same repetitions, else the floor scenario's.
                    beside = _find(rows, scenario, backend, "floor")
                    if ours == "durably":
                        floor = beside or _find(rows, "floor", backend, "floor")
                        versus.append(("floor", floor))
                    elif backend == "sqlite":
                        normal = (beside or {}).get("details_median", {})
                        if "s_per_commit_wal_normal" in normal:
                            versus.append(
                                ("floor_wal_normal", {"median": normal["s_per_commit_wal_normal"]})
                            )
                        else:
                            versus.append(("floor_wal_normal", normal_floor))
                for other, theirs in versus:
                    if theirs is None or not theirs["median"]:
                        continue
                    out.append(
                        {
                            "scenario": scenario,
                            "backend": backend,
                            "engine": ours,
                            "versus": other,
                            "metric": metric,
                            "ratio": mine["median"] / theirs["median"],
                        }
                    )
    return out


def _ratio(ratios: list[dict[str, Any]], scenario: str, backend: str, versus: str) -> Any:
    for r in ratios:
        if (r["scenario"], r["backend"], r["engine"], r["versus"], r["metric"]) == (
            scenario,
            backend,
            "durably",
            versus,
            METRICS[scenario][0],
        ):
            return r["ratio"]
    return None


def _targets(
    rows: list[dict[str, Any]], ratios: list[dict[str, Any]], errors: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The issue's goals, each with the measured ratio and whether it is met."""
    goals = [
        ("sequential", "sqlite", "dbos", 1 / 8, "durably s_per_step <= DBOS / 8"),
        ("sequential", "sqlite", "floor", 1.5, "durably s_per_step <= 1.5 x floor"),
        ("concurrent", "sqlite", "dbos", 1 / 20, "durably s_total <= DBOS / 20"),
        ("sequential", "postgres", "dbos", 1 / 4, "durably s_per_step <= DBOS / 4"),
        ("concurrent", "postgres", "dbos", 1 / 4, "durably s_total <= DBOS / 4"),
    ]
    for backend in BACKENDS:
        goals += [
            ("event_fanout", backend, "dbos", 1 / 10, "durably s_total <= DBOS / 10"),
            ("event_fanout", backend, "dbos_poll", 1 / 10, "durably s_total <= DBOS_poll / 10"),
        ]
    for backend in BACKENDS:
        goals += [
            ("child_fanout", backend, "dbos", 1 / 10, "durably s_total <= DBOS / 10"),
            ("queue_throughput", backend, "dbos", 1 / 10, "durably s_total <= DBOS / 10"),
        ]
    out: list[dict[str, Any]] = []
    for scenario, backend, versus, limit, text in goals:
        ratio = _ratio(ratios, scenario, backend, versus)
        out.append(
            {
                "goal": f"{scenario} {backend}: {text}",
                "ratio": ratio,
                "limit": limit,
                "met": None if ratio is None else ratio <= limit,
            }
        )
    # An absolute goal: its "ratio" is the measured median itself, in seconds.
    latency = _find(rows, "event_latency", "postgres", "durably")
    median = None if latency is None else latency["median"]
    out.append(
        {
            "goal": "event_latency postgres: durably s_latency_median < 0.020 s "
            "(seconds, not a ratio)",
            "ratio": median,
            "limit": 0.020,
            "met": None if median is None else median < 0.020,
        }
    )
    # Absolute goals of issues 17 and 18, per backend: 100 parallel steps of 100 ms in
    # about 0.1-0.2 s, and an idle worker at or below one statement per poll interval.
    for backend in BACKENDS:
        for scenario, metric, limit, text in (
            ("parallel_steps", "s_total", 0.2, "durably s_total <= 0.2 s (seconds, not a ratio)"),
            (
                "idle_worker",
                "stmts_per_poll_interval",
                1.0,
                "durably idle statements per poll interval <= 1 (a count, not a ratio)",
            ),
        ):
            found = _find(rows, scenario, backend, "durably", metric)
            value = None if found is None else found["median"]
            out.append(
                {
                    "goal": f"{scenario} {backend}: {text}",
                    "ratio": value,
                    "limit": limit,
                    "met": None if value is None else value <= limit,
                }
            )
    for backend in BACKENDS:
        for r in rows:
            if (r["scenario"], r["backend"], r["metric"]) != (
                "recovery",
                backend,
                "completed_step_repeats",
            ):
                continue
            failed = [
                e
                for e in errors
                if (e["scenario"], e["backend"], e["engine"]) == ("recovery", backend, r["engine"])
            ]
            out.append(
                {
                    "goal": f"recovery {backend} {r['engine']}: all complete, "
                    "0 committed steps rerun",
                    "ratio": r["max"],
                    "limit": 0,
                    "met": r["max"] == 0 and not failed,
                }
            )
    return out


# -- printing -----------------------------------------------------------------------------------


def _fmt(value: float, unit: str, metric: str) -> str:
    if unit == "count":
        return f"{value:.0f}"
    if unit == "count_f":
        return f"{value:.2f}"
    if unit == "per_s":
        return f"{value:.2f} /s"
    if metric.startswith(("s_per_step", "s_per_commit", "s_latency")):
        return f"{value * 1e3:.3f} ms"
    return f"{value:.2f} s"


def _said(ratio: float, metric: str) -> str:
    """A ratio of medians in words: of times (faster, slower) or of counts (fewer, more)."""
    counts = "stmts" in metric
    if ratio <= 1:
        return f"{1 / ratio:.1f}x {'fewer' if counts else 'faster'}"
    return f"{ratio:.2f}x {'more' if counts else 'slower'}"


def _print_table(
    rows: list[dict[str, Any]], ratios: list[dict[str, Any]], targets: list[dict[str, Any]]
) -> None:
    header = (
        f"{'scenario':<13} {'backend':<9} {'engine':<22} {'metric':<23} "
        f"{'median':>11} {'min':>11} {'max':>11} {'n':>2}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        unit, metric = r["unit"], r["metric"]
        print(
            f"{r['scenario']:<13} {r['backend']:<9} {r['engine']:<22} {metric:<23} "
            f"{_fmt(r['median'], unit, metric):>11} {_fmt(r['min'], unit, metric):>11} "
            f"{_fmt(r['max'], unit, metric):>11} {r['repeats']:>2}"
        )
    print()
    print("ratios of medians (time of the first / time of the second; < 1: the first is faster)")
    for q in ratios:
        ratio = q["ratio"]
        faster = _said(ratio, q["metric"])
        print(
            f"  {q['scenario']:<13} {q['backend']:<9} {q['engine']:>14} / {q['versus']:<16}"
            f" {q['metric']:<17} {ratio:8.3f}  ({faster})"
        )
    print()
    print("targets")
    for t in targets:
        mark = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
        value = "-" if t["ratio"] is None else f"{t['ratio']:.3f}"
        print(f"  [{mark}] {t['goal']}: {value} (limit {t['limit']:.3g})")


def markdown(report: dict[str, Any]) -> str:
    """The tables of ``docs/performance.md`` from a report (``--markdown latest.json``)."""
    lines = [
        "| scenario | backend | engine | metric | median | min | max | n |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in report["results"] + report.get("reference_floors", []):
        unit, metric = r["unit"], r["metric"]
        lines.append(
            f"| {r['scenario']} | {r['backend']} | {r['engine']} | {metric} "
            f"| {_fmt(r['median'], unit, metric)} | {_fmt(r['min'], unit, metric)} "
            f"| {_fmt(r['max'], unit, metric)} | {r['repeats']} |"
        )
    lines += [
        "",
        "| scenario | backend | engine | versus | metric | ratio of medians |",
        "|---|---|---|---|---|---:|",
    ]
    for q in report["ratios"]:
        ratio = q["ratio"]
        said = _said(ratio, q["metric"])
        lines.append(
            f"| {q['scenario']} | {q['backend']} | {q['engine']} | {q['versus']} "
            f"| {q['metric']} | {ratio:.3f} ({said}) |"
        )
    lines += ["", "| target | measured | limit | met |", "|---|---:|---:|---|"]
    for t in report["targets"]:
        value = "-" if t["ratio"] is None else f"{t['ratio']:.3f}"
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        lines.append(f"| {t['goal']} | {value} | {t['limit']:.3g} | {met} |")
    return "\n".join(lines)


# -- merging into an earlier results file ---------------------------------------------------------

RUN_KEYS = ("generated_at", "command", "duration_s", "machine", "versions", "sizes", "repeats")


def merged(
    old: dict[str, Any], new: dict[str, Any], scenarios: list[str], backends: list[str]
) -> dict[str, Any]:
    """``new`` with the rows of ``old`` that this run did not measure: the scenario and
    backend pairs of this run replace theirs, the others are kept, and the ratios and
    targets are computed again over all of them. ``runs`` lists where the rows come
    from: each contributing run's metadata and the pairs it measured (an older file
    without ``runs`` counts as one run of all its rows)."""
    done = {(s, b) for s in scenarios for b in backends}

    def kept(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rows if (r["scenario"], r["backend"]) not in done]

    rows = kept(old.get("results", [])) + new["results"]
    floors = new["reference_floors"] if "floor" in scenarios else old.get("reference_floors", [])
    errors = [
        e
        for e in old.get("errors", [])
        if (e["scenario"], e["backend"]) not in done and e["scenario"] != "*"
    ] + new["errors"]
    ratios = _ratios(rows, floors)
    earlier = old.get("runs") or [
        {
            **{k: old.get(k) for k in RUN_KEYS},
            "measured": sorted({f"{r['scenario']}/{r['backend']}" for r in old["results"]}),
        }
    ]
    runs = [
        {**run, "measured": [m for m in run["measured"] if tuple(m.split("/")) not in done]}
        for run in earlier
    ]
    runs = [run for run in runs if run["measured"]]
    runs.append(
        {
            **{k: new.get(k) for k in RUN_KEYS},
            "measured": sorted({f"{r['scenario']}/{r['backend']}" for r in new["results"]}),
        }
    )
    return {
        **new,
        "settings": {**old.get("settings", {}), **new["settings"]},
        "notes": {**old.get("notes", {}), **new["notes"]},
        "results": rows,
        "reference_floors": floors,
        "ratios": ratios,
        "targets": _targets(rows, ratios, errors),
        "errors": errors,
        "runs": runs,
    }


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for iterating")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--engines", default=None, help="only these engines (floor always runs)")
    parser.add_argument("--out", default=None, help="default: results/latest.json")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="overwrite the results file; by default the scenarios and backends of this "
        "run replace theirs in it and the others' are kept",
    )
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also run durably from another source tree (PATH/src) as engine durably@LABEL",
    )
    parser.add_argument(
        "--markdown", metavar="REPORT", help="only print the tables of REPORT as Markdown"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        report = json.loads(Path(args.markdown).read_text())
        print(markdown(report))
        return report
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    sizes = Sizes.quick() if args.quick else Sizes()
    scenarios = [s for s in args.scenarios.split(",") if s]
    backends = [b for b in args.backends.split(",") if b]
    unknown = set(scenarios) - set(SCENARIOS) | set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown scenario or backend: {sorted(unknown)}")
    for tree in args.tree:
        label, _, path = tree.partition("=")
        if not label or not os.path.isdir(os.path.join(path, "src", "durably")):
            parser.error(f"--tree wants LABEL=PATH with PATH/src/durably: {tree!r}")
        TREES[label] = os.path.abspath(path)
    wanted = set(args.engines.split(",")) if args.engines else None
    if wanted is not None:
        wanted |= {f"durably@{label}" for label in TREES}
    default_out = "quick.json" if args.quick else "latest.json"
    out = Path(args.out) if args.out else HERE / "results" / default_out

    errors: list[dict[str, Any]] = []
    postgres_version = None
    if "postgres" in backends:
        why = _postgres_reachable()
        if why is not None:
            print(f"PostgreSQL at {SERVER} is not reachable ({why}): skipping it")
            errors.append({"scenario": "*", "backend": "postgres", "engine": "*", "error": why})
            backends.remove("postgres")
        else:
            with _admin() as conn:
                row = conn.execute("SHOW server_version").fetchone()
                postgres_version = row[0] if row else None

    machine = _machine()
    began = time.perf_counter()
    samples: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    settings: dict[str, Any] = {}
    targets = Targets()
    try:
        for scenario in scenarios:
            for backend in backends:
                engines = _engines(scenario, backend, wanted, "floor" in scenarios)
                for rep in range(args.repeats):
                    order = engines if rep % 2 == 0 else engines[::-1]
                    for engine in order:
                        key = (scenario, backend, engine)
                        samples.setdefault(key, [])
                        t0 = time.perf_counter()
                        try:
                            result = _once(targets, scenario, backend, engine, sizes)
                        except Exception as e:
                            print(f"  {scenario}/{backend}/{engine} #{rep + 1}: FAILED: {e}")
                            errors.append(
                                {
                                    "scenario": scenario,
                                    "backend": backend,
                                    "engine": engine,
                                    "repeat": rep + 1,
                                    "error": "".join(traceback.format_exception_only(e))[-4000:],
                                }
                            )
                            continue
                        samples[key].append(result)
                        settings.setdefault(f"{backend}/{engine}", result.get("settings"))
                        metric = _metric(scenario, engine)[0]
                        print(
                            f"  {scenario}/{backend}/{engine} #{rep + 1}: "
                            f"{metric}={result['figures'][metric]:.6g}"
                            f" ({time.perf_counter() - t0:.1f}s)",
                            flush=True,
                        )
    finally:
        targets.close()

    rows = _aggregate(samples)
    reference_floors = [
        _row("floor", "sqlite", "floor", k, "s", [r["figures"][k] for r in runs])
        for (scenario, backend, _e), runs in samples.items()
        if scenario == "floor" and backend == "sqlite" and runs
        for k in ("s_per_commit_delete_full", "s_per_commit_wal_normal")
    ]
    ratios = _ratios(rows, reference_floors)
    goals = _targets(rows, ratios, errors)
    machine["load_average_at_end"] = list(os.getloadavg())
    report = {
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "duration_s": round(time.perf_counter() - began, 1),
        "machine": machine,
        "versions": _versions(postgres_version),
        "sizes": sizes.to_json(),
        "repeats": args.repeats,
        "trees": dict(TREES),
        "settings": settings,
        "notes": {
            "durably": "SQLite WAL + synchronous=FULL (durably_normal: NORMAL); PostgreSQL "
            "with the server's synchronous_commit",
            "dbos": "DBOS as shipped: on SQLite its own engine, rollback journal (DELETE) at "
            "SQLite's default synchronous=FULL",
            "dbos_wal": "DBOS with system_database_engine: its own engine settings plus "
            "journal_mode=WAL, synchronous=FULL",
            "dbos_poll": "DBOS as shipped but notification_listener_polling_interval_sec="
            f"{EVENT_POLL_S} (durably's poll interval in the event scenarios; DBOS's "
            "default is 1 s); event scenarios only",
            "events": f"durably runs with poll_interval={EVENT_POLL_S}s in the event "
            "scenarios (its default is 1 s); on PostgreSQL both engines are woken by "
            "LISTEN/NOTIFY. event_latency: worker and sender in two processes, one "
            "waiting workflow at a time, a random pause of up to one poll period before "
            "each send; event_fanout: one process runs the workflows and sends the events "
            "(durably: asyncio.gather of send_event; DBOS: one send_bulk)",
            "floor": "one tiny INSERT per transaction, serially (SQLite: WAL + FULL)",
            "children_queues": "child_fanout, parallel_steps, queue_throughput and "
            "idle_worker compare durably and DBOS as shipped (durably's poll interval 1 s; "
            "DBOS's queue in queue_throughput polls every "
            f"{os.environ.get('BENCH_DBOS_QUEUE_POLL_S', '0.05')} s, its default 1 s in "
            "idle_worker). child_fanout and parallel_steps wait for the output with each "
            "engine's own result call (engine.result, handle.get_result); idle_worker "
            "counts statements on PostgreSQL as the server's transactions "
            "(pg_stat_database xact_commit + xact_rollback: pg_stat_statements is not "
            "preloaded) and on SQLite as traced statements (set_trace_callback); client_* "
            "figures count the statements sent by the process (scenarios/counting.py)",
            "timing": "every repetition in a fresh child process and database; engine order "
            "reversed at every repetition; completion checked every 50 ms through each "
            "engine's own listing",
        },
        "results": rows,
        "reference_floors": reference_floors,
        "ratios": ratios,
        "targets": goals,
        "errors": errors,
    }
    print()
    _print_table(rows + reference_floors, ratios, goals)
    if errors:
        print(f"\n{len(errors)} failure(s); see 'errors' in {out}")
    if out.exists() and not args.replace:
        report = merged(json.loads(out.read_text()), report, scenarios, backends)
        print(f"\nmerged into the results of other scenarios in {out} (--replace: do not)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {out} ({report['duration_s']:.0f}s)")
    return report


if __name__ == "__main__":
    main()
