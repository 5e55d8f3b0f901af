"""Keeping passwords out of messages: backend URLs and libpq settings carry them."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

__all__ = ["MASK", "mask_passwords", "url_secrets"]

MASK = "***"

# ``scheme://user:password@host``: the password runs to the last ``@`` of the word (a raw
# ``@`` in a password is common enough, although a URL should percent-encode it).
_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s'\"]*):[^\s'\"]*@")
# libpq's ``key=value`` form, and the ``password=`` query parameter of a URL.
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|[^\s&'\"]+)", re.IGNORECASE)


def url_secrets(url: str) -> set[str]:
    """The passwords written in ``url`` (in its user part or as ``password=``), raw and
    percent-decoded, so that a message quoting either form can be cleaned.

    >>> sorted(url_secrets("postgresql://me:s%40cret@db/app?sslmode=require"))
    ['s%40cret', 's@cret']
    >>> url_secrets("sqlite:///durably.db")
    set()
    """
    try:
        parts = urllib.parse.urlsplit(url)
        found = {parts.password} if parts.password else set()
        found |= {v for k, v in urllib.parse.parse_qsl(parts.query) if k.lower() == "password"}
    except ValueError:  # not a URL (a port that is not a number, say): nothing to take
        found = set()
    decoded = {urllib.parse.unquote(secret) for secret in found}
    return {secret for secret in found | decoded if secret}


def mask_passwords(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every password replaced by ``***``: those of URLs and of
    ``password=`` settings, and each of ``secrets`` wherever it appears.

    >>> mask_passwords("cannot open postgresql://me:s3cret@db:5432/app: refused")
    'cannot open postgresql://me:***@db:5432/app: refused'
    >>> mask_passwords("host=db password=s3cret dbname=app")
    'host=db password=*** dbname=app'
    >>> mask_passwords("auth failed for s3cret", ["s3cret"])
    'auth failed for ***'
    """
    masked = _URL_PASSWORD.sub(rf"\1:{MASK}@", text)
    masked = _KEYWORD_PASSWORD.sub(rf"\g<1>{MASK}", masked)
    # Longest first: a secret that contains another is masked whole.
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 3:  # a 1- or 2-character "password" would mask half the text
            masked = masked.replace(secret, MASK)
    return masked
