"""User errors on the command line: one clear line on stderr and a meaningful exit code,
never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import NoReturn, ParamSpec, TypeVar

import click
import psycopg

from reconciler.redact import redact

P = ParamSpec("P")
R = TypeVar("R")

EXIT_USER_ERROR = 2


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    click.echo(f"error: {redact(message)}", err=True)
    sys.exit(code)


def user_errors(
    *expected: type[Exception],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn ``expected`` errors (whose message already says what to do) and any database
    error into one line on stderr and exit 2."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return func(*args, **kwargs)
            except expected as exc:
                fail(str(exc))
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()
                fail(f"database error: {first[0] if first else type(exc).__name__}")

        return wrapper

    return decorate
