"""The one base class of the errors a user can cause, and how entry points report them.

Every error class of the package (``TrainingError``, ``OptionsError``, ``WeightsFileError``,
``ElmoError``, ...) derives from ``UserError``; its message is one line that names the file,
key or value and says what to fix. Entry points wrap their work in ``user_errors()``, which
prints ``error: <message>`` on stderr and exits with status 1 (docs/ERRORS.md lists them).
"""

from __future__ import annotations

import contextlib
import errno
import sys
from collections.abc import Iterator


class UserError(ValueError):
    """A mistake in what the user asked for or gave; the message says what to fix."""


class TrainingError(UserError):
    """A mistake in what the user asked ``train.py`` for (a config key, a value, a path)."""


class OutputError(UserError):
    """A file that cannot be written where the user asked (missing directory, a directory in
    its place, read-only, full disk)."""


def os_reason(exc: OSError) -> str:
    """What the system said about a failed read or write, and the fix where there is one."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        reason += " (free some space)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += " (write somewhere else, or make it writable)"
    return reason


def os_error_message(exc: OSError) -> str:
    """One line for a failed read or write: the path and what the system said."""
    return f"{exc.filename}: {os_reason(exc)}" if exc.filename is not None else os_reason(exc)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turns a ``UserError``, or an ``OSError`` on a named file (full disk, read-only
    directory), into ``error: <message>`` on stderr and exit status 1."""
    try:
        yield
    except UserError as exc:
        sys.exit("error: " + _one_line(str(exc)))
    except OSError as exc:
        if exc.filename is None and exc.errno not in (errno.ENOSPC, errno.EROFS):
            raise
        sys.exit("error: " + _one_line(os_error_message(exc)))


def _one_line(message: str) -> str:
    return " ".join(message.split("\n"))
