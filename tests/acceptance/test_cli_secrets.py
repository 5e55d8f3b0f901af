"""No ``durably`` output shows a password, and an unreachable PostgreSQL is one clear line.

Every failing path of the command runs in a subprocess with a URL whose password is a
secret; stdout and stderr together must not contain it (nor its URL-encoded form).
"""

from __future__ import annotations

import signal
import subprocess
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.cli_process import Ran, durably, script
from tests.integration.pg_support import (
    drop_schema,
    engine_url,
    pg_database,  # noqa: F401 - the session's database
    server_url,
)

SECRET = "s3cret-Pa55"
APP = """
import logging
import os

import durably


@durably.workflow
async def greet(name: str) -> str:
    return await durably.step("hello", lambda: f"hello {name}")


@durably.workflow
async def chatty(name: str) -> str:
    # An application that logs its configuration (a warning reaches stderr).
    logging.getLogger("app").warning("store is %s", os.environ.get("DURABLY_BACKEND"))
    return await durably.step("hello", lambda: f"hello {name}")


workflows = [greet, chatty]
"""


def with_password(url: str, password: str = SECRET) -> str:
    """``url`` (``postgresql://user@host...``) with ``password`` in its user part."""
    parts = urllib.parse.urlsplit(url)
    user = parts.username or "postgres"
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{urllib.parse.quote(password, safe='')}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def server() -> tuple[str, int]:
    """The test server's host and port."""
    parts = urllib.parse.urlsplit(server_url())
    return parts.hostname or "localhost", parts.port or 5432


REFUSED = with_password("postgresql://postgres@127.0.0.1:1/app")
"""Nothing listens on port 1: the connection is refused at once."""


def no_secret(ran: Ran) -> None:
    for form in (SECRET, urllib.parse.quote(SECRET, safe="")):
        assert form not in ran.output, ran.output


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "secret_app.py").write_text(APP, encoding="utf-8")
    return tmp_path


@pytest.fixture
def schema(pg_database: str) -> Iterator[tuple[str, str]]:  # noqa: F811 - the fixture
    """A fresh schema name in the session's database, dropped afterwards."""
    name = f"cli_{uuid.uuid4().hex[:10]}"
    yield pg_database, name
    drop_schema(pg_database, name)


FAILING = {
    "list": ["list"],
    "status": ["status", "o-1"],
    "show": ["show", "o-1"],
    "cancel": ["cancel", "o-1"],
    "purge": ["purge", "--all"],
    "purge-dry-run": ["purge", "--all", "--dry-run"],
    "start": ["start", "greet", "--input", '"Ada"', "--app", "secret_app:workflows"],
    "worker": ["worker", "secret_app:workflows"],
    "queue": ["queue", "greet", "--input", '"Ada"', "--app", "secret_app:workflows"],
    "queues": ["queues"],
}


@pytest.mark.parametrize("argv", FAILING.values(), ids=FAILING.keys())
def test_a_refused_connection_masks_the_password_on_every_command(
    app: Path, argv: list[str]
) -> None:
    ran = durably(*argv, "--backend", REFUSED, cwd=app)
    assert ran.code == 1
    assert "connection refused" in ran.error_line()
    no_secret(ran)


@pytest.mark.parametrize("argv", FAILING.values(), ids=FAILING.keys())
def test_the_password_of_durably_backend_is_masked_too(app: Path, argv: list[str]) -> None:
    ran = durably(*argv, cwd=app, env={"DURABLY_BACKEND": REFUSED})
    assert ran.code == 1
    ran.error_line()
    no_secret(ran)


def test_the_password_of_a_profile_is_masked(app: Path) -> None:
    (app / "deploy.yaml").write_text(f"backend:\n  url: {REFUSED}\n", encoding="utf-8")
    for argv in (["list"], ["start", "greet", "--input", '"A"', "--app", "secret_app:workflows"]):
        ran = durably(*argv, "--profile", "./deploy.yaml", cwd=app)
        assert ran.code == 1
        assert "127.0.0.1:1" in ran.error_line()
        no_secret(ran)


def test_a_profile_that_is_not_valid_yaml_names_its_file_and_hides_the_password(
    app: Path,
) -> None:
    profile = app / "broken.yaml"
    profile.write_text(f"backend:\n  url: {REFUSED}\n  synchronous: [FULL\n", encoding="utf-8")
    ran = durably("list", "--profile", str(profile), cwd=app)
    assert ran.code == 2
    line = ran.error_line()
    assert str(profile) in line
    assert "not valid YAML" in line
    assert "line 4" in line
    no_secret(ran)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresq://postgres:{SECRET}@127.0.0.1/app",  # a misspelt scheme
        f"postgresql://postgres:{SECRET}@127.0.0.1:notaport/app",
        f"postgresql://postgres@127.0.0.1:1/app?password={SECRET}",
    ],
    ids=["scheme", "port", "query"],
)
def test_a_malformed_url_is_refused_without_its_password(app: Path, url: str) -> None:
    ran = durably("list", "--backend", url, cwd=app)
    assert ran.code in (1, 2)
    ran.error_line()
    no_secret(ran)


def test_the_real_server_with_a_missing_database(app: Path) -> None:
    host, port = server()
    missing = f"durably_missing_{uuid.uuid4().hex[:8]}"
    url = with_password(f"postgresql://postgres@{host}:{port}/{missing}")
    for argv in (["list"], ["start", "greet", "--input", '"A"', "--app", "secret_app:workflows"]):
        ran = durably(*argv, "--backend", url, cwd=app)
        assert ran.code == 1
        assert f'database "{missing}" does not exist' in ran.error_line()
        no_secret(ran)


def test_an_unknown_id_and_the_worker_banner_on_a_real_database(
    app: Path, schema: tuple[str, str]
) -> None:
    dsn, name = schema
    url = with_password(engine_url(dsn, name))  # trust authentication takes any password
    started = durably(
        "start", "chatty", "--input", '"Ada"', "--id", "c-1", "--app", "secret_app:workflows",
        cwd=app, env={"DURABLY_BACKEND": url},
    )  # fmt: skip
    assert started.code == 0, started.err
    assert "store is postgresql://postgres:***@" in started.err  # the app's log line, masked
    no_secret(started)
    unknown = durably("status", "ghost", "--backend", url, cwd=app)
    assert unknown.code == 2
    assert unknown.error_line() == "no workflow instance with id 'ghost'"
    no_secret(unknown)
    worker = subprocess.Popen(
        [script(), "worker", "secret_app:workflows", "--backend", url],
        cwd=app,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    try:
        banner = worker.stderr.readline()  # printed once its signal handlers are set
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, banner + err
    assert "on postgresql://postgres:***@" in banner
    no_secret(Ran(worker.returncode, out, banner + err))


# -- an unreachable server: one line, naming where and why -----------------------------------


def test_a_refused_connection_is_one_line_naming_host_port_and_database(app: Path) -> None:
    ran = durably("list", "--backend", REFUSED, cwd=app)
    assert ran.code == 1
    assert ran.error_line() == (
        'cannot connect to PostgreSQL at 127.0.0.1:1, database "app" (user postgres): '
        "connection refused"
    )


def test_an_unknown_database_is_one_line_naming_it(app: Path) -> None:
    host, port = server()
    missing = f"durably_missing_{uuid.uuid4().hex[:8]}"
    url = f"postgresql://postgres@{host}:{port}/{missing}"
    ran = durably("list", "--backend", url, cwd=app)
    assert ran.code == 1
    assert ran.error_line() == (
        f'cannot connect to PostgreSQL at {host}:{port}, database "{missing}" (user postgres): '
        f'database "{missing}" does not exist'
    )


def test_an_unknown_user_is_one_line_naming_it(app: Path) -> None:
    host, port = server()
    url = f"postgresql://nobody_{uuid.uuid4().hex[:6]}@{host}:{port}/postgres"
    ran = durably("list", "--backend", url, cwd=app)
    assert ran.code == 1
    line = ran.error_line()
    assert line.startswith(f"cannot connect to PostgreSQL at {host}:{port}")
    assert line.endswith("does not exist")  # role "nobody_..." does not exist
