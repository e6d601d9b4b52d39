"""The few error types a user can cause, and how a command line reports them.

A user mistake (bad params, bad data, bad request) is an ``MlrepoError``: its message names the
file, column or key, the rule that was broken and how to fix it. ``run_cli`` prints that message
and exits non-zero without a traceback; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

EXIT_USER_ERROR = 2


class MlrepoError(Exception):
    """Base class of errors caused by the user's input rather than by a bug."""


class ParamsError(MlrepoError):
    """params.yaml (or a -S override) has an unknown key or a value that is not allowed."""


class DataError(MlrepoError):
    """An input table is missing, unreadable or breaks a validation rule."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type's name): what a user is shown of
    a library's error, whose later lines are its own context."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run ``main`` and turn an ``MlrepoError`` into one clear message and exit code 2."""
    try:
        return main(argv) or 0
    except MlrepoError as exc:
        logging.getLogger("mlrepo").debug("user error", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
