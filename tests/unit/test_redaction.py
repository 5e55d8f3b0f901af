"""Passwords never reach a message: ``mask_passwords``, ``url_secrets`` and the
PostgreSQL descriptions built on them."""

from __future__ import annotations

import doctest
import importlib

import psycopg
import pytest

from durably.adapters.postgres.dsn import connect_failure, safe_dsn, target
from durably.domain.redaction import mask_passwords, url_secrets

SECRET = "s3cret-Pa55"


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://app:{SECRET}@db:5432/orders",
        f"cannot open postgresql://app:{SECRET}@db/orders: refused",
        f"'postgres://app:{SECRET}@db/orders'",
        f"postgresql://app:{SECRET}@with@at@db/orders",
        f"host=db password={SECRET} dbname=orders",
        f"postgresql://app@db/orders?sslmode=require&password={SECRET}",
        f"PASSWORD = '{SECRET}'",
    ],
)
def test_every_form_of_a_password_is_masked(text: str) -> None:
    masked = mask_passwords(text)
    assert SECRET not in masked
    assert "***" in masked


def test_known_secrets_are_masked_wherever_they_appear() -> None:
    url = f"postgresql://app:{SECRET.replace('-', '%2D')}@db/orders"
    secrets = url_secrets(url)
    assert SECRET in secrets  # decoded as well as raw
    assert mask_passwords(f"login {SECRET} refused", secrets) == "login *** refused"


def test_urls_without_a_password_are_unchanged() -> None:
    for text in ("sqlite:///durably.db", "postgresql://app@db:5432/orders", "memory://"):
        assert mask_passwords(text) == text
        assert url_secrets(text) == set()


def test_postgres_descriptions_name_the_target_without_the_password() -> None:
    dsn = f"postgresql://app:{SECRET}@db.internal:6432/orders"
    assert target(dsn) == 'PostgreSQL at db.internal:6432, database "orders" (user app)'
    assert safe_dsn(dsn) == "postgresql://app:***@db.internal:6432/orders"
    failure = connect_failure(
        dsn,
        psycopg.OperationalError(
            'connection failed: connection to server at "10.0.0.1", port 6432 failed: '
            f'FATAL:  password authentication failed for user "app" ({SECRET})'
        ),
    )
    assert failure.startswith('cannot connect to PostgreSQL at db.internal:6432, database "orders"')
    assert "password authentication failed" in failure
    assert SECRET not in failure
    assert "\n" not in failure


@pytest.mark.parametrize("module", ["durably.domain.redaction", "durably.adapters.postgres.dsn"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted >= 3
    assert result.failed == 0
