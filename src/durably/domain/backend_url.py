"""Backend URLs: ``memory://``, ``sqlite:///path.db``, ``postgresql://...``, parsed once."""

from __future__ import annotations

import urllib.parse

import attrs

from durably.domain.redaction import mask_passwords, url_secrets

__all__ = ["BackendUrl", "parse_backend_url"]


@attrs.frozen
class BackendUrl:
    """A parsed backend URL: the kind of backend, its file or DSN, and its options."""

    kind: str
    path: str | None = None
    options: dict[str, str] = attrs.field(factory=dict)


def parse_backend_url(url: str) -> BackendUrl:
    """``memory://``, ``sqlite:///path.db`` (``?synchronous=NORMAL``), ``postgresql://...``.

    >>> parse_backend_url("sqlite:///data/app.db?synchronous=NORMAL")
    BackendUrl(kind='sqlite', path='data/app.db', options={'synchronous': 'NORMAL'})
    """
    # Messages quote the URL without its password.
    shown = mask_passwords(url, url_secrets(url)) if isinstance(url, str) else url
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(
            f"backend URL {shown!r} is not one of memory://, sqlite:///path.db, postgresql://..."
        )
    parts = urllib.parse.urlsplit(url)
    options = dict(urllib.parse.parse_qsl(parts.query))
    if parts.scheme == "memory":
        return BackendUrl("memory", None, options)
    if parts.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
        rest = url[len("sqlite://") :].split("?", 1)[0]
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ValueError(f"backend URL {shown!r} names no database file (sqlite:///path.db)")
        return BackendUrl("sqlite", path, options)
    if parts.scheme in ("postgresql", "postgres"):
        # Our own option (schema) is taken out; the rest of the URL goes to libpq as it is.
        passed = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "schema"]
        query = urllib.parse.urlencode(passed)
        dsn = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")
        return BackendUrl("postgres", dsn, options)
    raise ValueError(
        f"unknown backend scheme {parts.scheme!r} in {shown!r} (use memory://, sqlite:///path.db "
        "or postgresql://...)"
    )
