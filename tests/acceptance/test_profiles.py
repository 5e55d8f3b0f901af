"""The deployment profiles of ``containers/``: each loads and runs a workflow."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

import durably
from durably.engine import Engine

CONTAINERS = Path(__file__).resolve().parents[2] / "containers"
SECTIONS = ("backend", "tracker", "lease", "recovery", "purge", "worker")


@durably.workflow
async def double_later(x: int) -> int:
    """A step, a short sleep, then the step's result."""
    doubled = await durably.step("double", lambda: asyncio.sleep(0, x * 2))
    await durably.sleep("50ms")
    return doubled


async def run_to_completion(engine: Engine, instance_id: str) -> int:
    """Start ``double_later(21)`` and run its alarms here until it ends."""
    started = (await engine.start(double_later, 21, id=instance_id)).unwrap()
    assert not started.completed  # paused in its sleep
    stop = asyncio.Event()
    worker = asyncio.get_running_loop().create_task(engine.run_worker(stop=stop))
    try:
        output: int = (await engine.result(instance_id, timeout="10s")).unwrap()
    finally:
        stop.set()
        await worker
    return output


@pytest.mark.parametrize("name", ["memory", "sqlite", "postgres"])
def test_profile_is_a_documented_mapping_with_every_section(name: str) -> None:
    text = (CONTAINERS / f"{name}.yaml").read_text(encoding="utf-8")
    profile = yaml.safe_load(text)
    assert set(SECTIONS) <= set(profile)
    assert profile["tracker"]["kind"] in ("noop", "logging")
    assert profile["worker"]["concurrency"] > 0
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert len(comments) >= 5, "a profile explains what to change"


async def test_memory_profile_runs_a_workflow() -> None:
    engine = Engine.from_profile(CONTAINERS / "memory.yaml", [double_later])
    assert engine.backend_url == "memory://"
    assert engine.poll_interval_ms == 100
    async with engine:
        assert await run_to_completion(engine, "mem-1") == 42
        steps = (await engine.steps("mem-1")).unwrap()
    assert [(s.name, s.attempt) for s in steps] == [("double", 1)]


async def test_sqlite_profile_copied_with_its_path_edited(tmp_path: Path) -> None:
    database = tmp_path / "edited.db"
    profile = yaml.safe_load((CONTAINERS / "sqlite.yaml").read_text(encoding="utf-8"))
    profile["backend"]["url"] = f"sqlite:///{database}"
    edited = tmp_path / "sqlite.yaml"
    edited.write_text(yaml.safe_dump(profile), encoding="utf-8")
    async with Engine.from_profile(edited, [double_later]) as engine:
        assert await run_to_completion(engine, "sql-1") == 42
    assert database.exists()
    # Another engine over the same file (a later process) sees the finished instance.
    async with Engine([double_later], backend=f"sqlite:///{database}") as later:
        status = (await later.status("sql-1")).unwrap().status
        assert status is not None
        assert status.tag == "Completed"


async def test_sqlite_profile_with_the_backend_overridden(tmp_path: Path) -> None:
    database = tmp_path / "override.db"
    engine = Engine.from_profile(
        CONTAINERS / "sqlite.yaml", [double_later], backend=f"sqlite:///{database}"
    )
    # The profile's other settings still apply.
    assert engine.lease.duration_ms == 30_000
    assert engine.lease.renew_every_ms == 10_000
    assert engine.poll_interval_ms == 1_000
    async with engine:
        assert await run_to_completion(engine, "sql-2") == 42
    assert database.exists()


async def test_postgres_profile_loads_or_refuses_clearly() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/test"
    assert yaml.safe_load((CONTAINERS / "postgres.yaml").read_text())["backend"]["url"] == url
    profile = CONTAINERS / "postgres.yaml"
    if importlib.util.find_spec("durably.adapters.postgres") is None:
        # A build without the PostgreSQL backend refuses the profile with a clear error.
        with pytest.raises(ValueError, match="PostgreSQL"):
            Engine.from_profile(profile, [double_later])
        return
    if importlib.util.find_spec("psycopg") is None:
        with pytest.raises(ImportError, match="psycopg"):
            Engine.from_profile(profile, [double_later])
        return
    engine = Engine.from_profile(profile, [double_later])
    assert engine.backend_url == url
    await engine.open()  # CI starts the server: no server is a failure, never a skip
    try:
        assert await run_to_completion(engine, f"pg-{uuid.uuid4()}") == 42
    finally:
        await engine.close()


def test_a_profile_chooses_the_http_tracker_with_its_settings(tmp_path: Path) -> None:
    from durably.trackers import HttpBatchTracker

    profile = tmp_path / "http.yaml"
    profile.write_text(
        "backend:\n  url: memory://\n"
        "tracker:\n  kind: http\n  endpoint: http://127.0.0.1:9/events\n"
        "  env: staging\n  service_key: billing\n  batch_size: 7\n"
    )
    engine = Engine.from_profile(profile, [])
    assert isinstance(engine.tracker, HttpBatchTracker)
    assert engine.tracker.endpoint == "http://127.0.0.1:9/events"
    assert engine.tracker.env == "staging"
    assert engine.tracker.batch_size == 7


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("lease:\n  durration: 30s\n", "lease.durration"),
        ("backends:\n  url: memory://\n", "backends"),
        ("worker:\n  concurency: 5\n", "worker.concurency"),
    ],
)
def test_a_profile_with_an_unknown_key_is_refused_naming_it(
    tmp_path: Path, text: str, named: str
) -> None:
    profile = tmp_path / "typo.yaml"
    profile.write_text(text)
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        Engine.from_profile(profile, [])


def test_a_purge_section_without_enabled_leaves_purge_off(tmp_path: Path) -> None:
    profile = tmp_path / "purge.yaml"
    profile.write_text("backend:\n  url: memory://\npurge:\n  delay: 1 day\n")
    engine = Engine.from_profile(profile, [])
    assert engine._container.purge().enabled is False


# -- the profiles shipped in the package, and the store chosen over a profile ------------------

SHIPPED = Path(durably.__file__).resolve().parent / "profiles"


@pytest.mark.parametrize("name", ["memory", "sqlite", "postgres"])
def test_the_shipped_profiles_are_the_files_of_containers(name: str) -> None:
    shipped = (SHIPPED / f"{name}.yaml").read_bytes()
    assert shipped == (CONTAINERS / f"{name}.yaml").read_bytes(), (
        f"src/durably/profiles/{name}.yaml differs from containers/{name}.yaml: copy it over"
    )
    assert sorted(p.name for p in SHIPPED.glob("*.yaml")) == sorted(
        p.name for p in CONTAINERS.glob("*.yaml")
    )


def test_a_bare_name_loads_the_shipped_profile_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no containers/ here
    engine = Engine.from_profile("memory", [double_later])
    assert engine.backend_url == "memory://"
    assert engine.poll_interval_ms == 100
    sqlite = Engine.from_profile("sqlite", [double_later], backend="memory://")
    assert sqlite.lease.duration_ms == 30_000
    with pytest.raises(ValueError, match=r"no profile named 'mysql'.*memory, sqlite, postgres"):
        Engine.from_profile("mysql", [double_later])


def test_a_yaml_error_names_the_profiles_file(tmp_path: Path) -> None:
    profile = tmp_path / "broken.yaml"
    profile.write_text("backend:\n  url: memory://\nlease: [30s\n")
    with pytest.raises(ValueError, match="not valid YAML") as caught:
        Engine.from_profile(profile, [])
    message = str(caught.value)
    assert str(profile) in message
    assert "line" in message
    assert "\n" not in message


def _cli(cwd: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DURABLY_")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "durably"), *argv],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


APP = """
import durably


@durably.workflow
async def greet(name: str) -> str:
    return await durably.step("hello", lambda: f"hello {name}")


workflows = [greet]
"""


def test_backend_and_durably_backend_replace_the_profiles_store(tmp_path: Path) -> None:
    (tmp_path / "profile_app.py").write_text(APP)
    profile = tmp_path / "deploy.yaml"
    profile.write_text("backend:\n  url: sqlite:///profiled.db\n", encoding="utf-8")
    start = ["start", "greet", "--input", '"A"', "--app", "profile_app:workflows"]
    code, output = _cli(
        tmp_path, *start, "--id", "g-1", "--profile", str(profile), "--backend", "sqlite:///a.db"
    )
    assert code == 0, output
    code, output = _cli(
        tmp_path,
        *start,
        "--id",
        "g-2",
        "--profile",
        str(profile),
        env={"DURABLY_BACKEND": "sqlite:///b.db"},
    )
    assert code == 0, output
    assert (tmp_path / "a.db").exists()
    assert (tmp_path / "b.db").exists()
    assert not (tmp_path / "profiled.db").exists()  # the profile's store was replaced
    code, output = _cli(tmp_path, "list", "--profile", str(profile), "--backend", "sqlite:///a.db")
    assert code == 0, output
    assert "g-1" in output
    assert "g-2" not in output
