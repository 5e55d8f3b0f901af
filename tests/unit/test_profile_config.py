"""The profile is read once, into the root container's ``config``; every setting comes from it.

Defaults, then the profile (checked key by key: each error names the file and the key),
then the engine's keyword arguments: the providers read the merged ``config``.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import durably
from durably.containers import DEFAULTS, Durably, build_root, read_profile
from durably.containers.profile import SCHEMA, TRACKER_SETTINGS
from durably.engine import Engine, EngineOptions, Lease, Purge
from durably.errors import ProfileError, UsageError
from durably.services import RecoveryConfig
from durably.trackers import InMemoryTracker


@durably.workflow
async def noop() -> None:
    pass


def write(tmp_path: Path, text: str, name: str = "deploy.yaml") -> Path:
    profile = tmp_path / name
    profile.write_text(text, encoding="utf-8")
    return profile


# -- every error names the file and the key ------------------------------------------------

BAD = {
    "backend.url": "backend:\n  url: mysql://app:hunter2@db/app\n",
    "backend.synchronous": "backend:\n  synchronous: SOMETIMES\n",
    "tracker.kind": "tracker:\n  kind: carrier-pigeon\n",
    "tracker.endpoint": "tracker:\n  kind: http\n",
    "tracker.batch_size": "tracker:\n  kind: http\n  endpoint: http://c/e\n  batch_size: 0\n",
    "tracker.env": "tracker:\n  kind: logging\n  env: prod\n",
    "lease.duration": "lease:\n  duration: 30 parsecs\n",
    "lease.renew_every": "lease:\n  duration: 5s\n  renew_every: 10s\n",
    "recovery.max_recovery_attempts": "recovery:\n  max_recovery_attempts: -1\n",
    "recovery.recovery_delay_ms": "recovery:\n  recovery_delay_ms: soon\n",
    "purge.enabled": "purge:\n  enabled: maybe\n",
    "purge.delay": "purge:\n  enabled: true\n  delay: later\n",
    "worker.concurrency": "worker:\n  concurrency: 0\n",
    "worker.poll_interval": "worker:\n  poll_interval: often\n",
    "worker.concurency": "worker:\n  concurency: 5\n",
    "lease": "lease: 30s\n",
    "backends": "backends:\n  url: memory://\n",
}


@pytest.mark.parametrize(("key", "text"), BAD.items(), ids=BAD.keys())
def test_a_bad_value_is_refused_naming_the_file_and_the_key(
    tmp_path: Path, key: str, text: str
) -> None:
    profile = write(tmp_path, text)
    with pytest.raises(ProfileError) as caught:
        Engine.from_profile(profile, [noop])
    error = caught.value
    assert str(error).startswith(f"{profile}: {key}: "), str(error)
    assert (error.path, error.key) == (str(profile), key)
    assert isinstance(error, UsageError)
    assert isinstance(error, ValueError)
    assert "hunter2" not in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    "text", ["- memory://\n", "just a string\n", "backend: [memory://\n"], ids=str.strip
)
def test_a_document_that_is_not_a_profile_names_the_file(tmp_path: Path, text: str) -> None:
    profile = write(tmp_path, text)
    with pytest.raises(ProfileError, match=f"^{profile}: "):
        Engine.from_profile(profile, [noop])


def test_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"nowhere\.yaml: cannot be read: No such file"):
        Engine.from_profile(tmp_path / "nowhere.yaml", [noop])


def test_an_empty_profile_gives_every_default(tmp_path: Path) -> None:
    engine = Engine.from_profile(write(tmp_path, "# nothing yet\n"), [noop])
    assert engine._container.config() == {**DEFAULTS}
    assert engine.backend_url == DEFAULTS["backend"]["url"]


def test_the_schema_knows_every_section_and_tracker_the_container_does() -> None:
    assert set(SCHEMA) == set(DEFAULTS)
    assert set(TRACKER_SETTINGS) == set(Durably.tracker.providers)
    for section in ("lease", "recovery", "purge", "worker"):
        assert set(SCHEMA[section]) == set(DEFAULTS[section]), section


# -- the container's configuration is what the engine runs on -----------------------------

PROFILE = """
backend:
  url: memory://
tracker:
  kind: memory
lease:
  duration: 2m
  renew_every: 20s
recovery:
  max_recovery_attempts: 1
purge:
  enabled: true
  delay: 1h
worker:
  concurrency: 7
  poll_interval: 250ms
"""


def test_the_profile_is_loaded_into_the_containers_config(tmp_path: Path) -> None:
    engine = Engine.from_profile(write(tmp_path, PROFILE), [noop])
    config = engine._container.config
    assert config.backend.url() == "memory://"
    assert config.lease.duration() == "2m"
    assert config.worker.concurrency() == 7
    # ... and every provider reads it from there.
    assert engine.lease.duration_ms == 120_000
    assert engine.lease.renew_every_ms == 20_000
    assert engine.poll_interval_ms == 250
    assert engine.worker_concurrency == 7
    assert isinstance(engine.tracker, InMemoryTracker)
    assert engine._container.recovery() == RecoveryConfig(max_recovery_attempts=1)
    purge = engine._container.purge()
    assert (purge.enabled, purge.delay_ms) == (True, 3_600_000)


def test_the_profile_is_read_once(tmp_path: Path) -> None:
    profile = write(tmp_path, PROFILE)
    engine = Engine.from_profile(profile, [noop])
    profile.unlink()  # what the engine knows of it is in its configuration
    assert engine.worker_concurrency == 7
    assert engine.with_options(read_only=True).worker_concurrency == 7


def test_keyword_arguments_given_replace_the_profiles_values(tmp_path: Path) -> None:
    engine = Engine.from_profile(
        write(tmp_path, PROFILE),
        [noop],
        lease=Lease(duration="1m", renew_every="5s"),
        poll_interval="2s",
        recovery=RecoveryConfig(max_recovery_attempts=5),
        purge=Purge(delay="2h"),
    )
    assert engine.lease == Lease(duration="1m", renew_every="5s")
    assert engine.poll_interval_ms == 2_000
    assert engine._container.recovery().max_recovery_attempts == 5
    assert engine._container.purge().delay_ms == 7_200_000
    assert engine.worker_concurrency == 7  # not given: the profile's
    assert engine.backend_url == "memory://"


def test_keyword_arguments_left_none_keep_the_profiles_values(tmp_path: Path) -> None:
    engine = Engine.from_profile(
        write(tmp_path, PROFILE), [noop], backend=None, lease=None, purge=None, recovery=None
    )
    assert engine.backend_url == "memory://"
    assert engine.lease.duration_ms == 120_000
    assert engine._container.purge().enabled is True
    assert engine._container.recovery().max_recovery_attempts == 1


def test_an_engine_without_a_profile_runs_on_the_defaults() -> None:
    engine = Engine([noop], backend="memory://")
    assert engine.options == EngineOptions(backend="memory://")
    assert engine.lease == Lease()
    assert engine.poll_interval_ms == 1_000
    assert engine.worker_concurrency == 100
    assert engine._container.recovery() == RecoveryConfig()
    assert engine._container.purge().enabled is False


def test_a_bad_keyword_argument_is_refused_without_a_file_name() -> None:
    with pytest.raises(ValueError, match="synchronous must be FULL or NORMAL"):
        Engine([noop], backend="memory://", synchronous="SOMETIMES")
    with pytest.raises(ValueError, match="poll_interval"):
        Engine([noop], backend="memory://", poll_interval="often")
    with pytest.raises(ValueError, match="unknown backend scheme 'mysql'"):
        Engine([noop], backend="mysql://db/app")


def test_build_root_merges_defaults_profile_and_settings(tmp_path: Path) -> None:
    container = build_root([noop], {"worker": {"concurrency": 3}}, profile=write(tmp_path, PROFILE))
    assert container.config.worker.concurrency() == 3  # the settings, over the profile
    assert container.config.worker.poll_interval() == "250ms"  # the profile
    assert container.config.recovery.recovery_delay_ms() == 100  # the default
    assert DEFAULTS["worker"]["concurrency"] == 100  # the defaults are never changed


def test_read_profile_gives_the_checked_sections(tmp_path: Path) -> None:
    settings = read_profile(write(tmp_path, "backend:\n  url: memory://\npurge:\n"))
    assert settings == {"backend": {"url": "memory://"}}


@pytest.mark.parametrize("module", ["durably.containers.profile", "durably.domain.backend_url"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted >= 1
    assert result.failed == 0
