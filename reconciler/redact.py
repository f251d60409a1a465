"""Keeping passwords out of what flux shows: errors, logs, the status, CLI output.

A database URL (``postgresql://user:password@host/db``) or a key/value connection string
(``password=...``) turns up in drivers' messages, e.g. a URL that does not parse is quoted
whole. Every such text goes through :func:`redact` before it is shown or stored.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote, unquote

MASK: Final = "***"

# user:password@ in a URL (any scheme, or none: libpq quotes the text after the scheme).
# Without a scheme the "password" may not start with //: else "postgresql://user@host"
# (no password) reads as user "postgresql" and password "//user", and the advice
# "use postgresql://USER@HOST/DBNAME" itself came out as "postgresql:***@HOST/DBNAME".
_URL_PASSWORD: Final = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@\"'=]*:|[^\s:/@\"'=]*:(?!//))[^\s@\"']*@"
)
# password=... in a key/value connection string or a URL's query; quoted or not.
_KEY_PASSWORD: Final = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|\"[^\"]*\"|[^\s&'\"]+)", re.IGNORECASE
)


def password_of(url: str) -> str | None:
    """The password in a database URL or key/value string, found leniently (the text need
    not parse), or None."""
    match = re.search(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&']+)", url, re.IGNORECASE)
    if match:
        return match[1].strip("'") or None
    # As _URL_PASSWORD: "postgresql://user@host" has no password (not "//user").
    match = re.search(
        r"^(?:[a-z][a-z0-9+.-]*://[^\s:/@]*:|[^\s:/@]*:(?!//))([^\s@]*)@", url, re.IGNORECASE
    )
    return (match[1] or None) if match else None


def redact(text: str, *urls: str | None) -> str:
    """``text`` with every password masked: those of ``urls`` wherever they appear (as
    written, percent-decoded and percent-encoded), and any ``user:password@`` or
    ``password=...`` pattern."""
    for url in urls:
        secret = password_of(url) if url else None
        if secret:
            for form in {secret, unquote(secret), quote(secret, safe="")}:
                if len(form) >= 3:  # masking "a" everywhere would mangle the message
                    text = text.replace(form, MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _KEY_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)
