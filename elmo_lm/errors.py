"""The one base class of the errors a user can cause, and how entry points report them.

Every error class of the package (``TrainingError``, ``OptionsError``, ``WeightsFileError``,
``ElmoError``, ...) derives from ``UserError``; its message is one line that names the file,
key or value and says what to fix. Entry points wrap their work in ``user_errors()``, which
prints ``error: <message>`` on stderr and exits with status 1 (docs/ERRORS.md lists them);
under DDP only rank 0 prints it, as every rank meets the same mistake.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
import time
from collections.abc import Iterator
from types import ModuleType


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
    directory), into ``error: <message>`` on stderr and exit status 1; a process of rank > 0
    (DDP's other ranks) exits with status 1 without a word, leaving the line to rank 0."""
    try:
        yield
    except UserError as exc:
        _exit(str(exc))
    except OSError as exc:
        if exc.filename is None and exc.errno not in (errno.ENOSPC, errno.EROFS):
            raise
        _exit(os_error_message(exc))


def _exit(message: str) -> None:
    if global_rank() == 0:
        sys.exit("error: " + _one_line(message))
    if _distributed() is not None and _distributed().is_initialized():
        # Lightning's launcher kills rank 0 (SIGKILL) once a child has failed: give rank 0,
        # meeting the same mistake, the time to print it first.
        time.sleep(2)
    sys.exit(1)


def _distributed() -> ModuleType | None:
    """``torch.distributed`` where torch is imported already (never imported for this)."""
    dist = getattr(sys.modules.get("torch"), "distributed", None)
    return dist if dist is not None and dist.is_available() else None


RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")
"""What launchers (torchrun, Lightning's DDP launcher, SLURM) tell a process of its rank."""


def global_rank() -> int:
    """This process's rank among the processes of a run: ``torch.distributed``'s once it is
    initialised, else nonzero where a launcher's variable says so, else 0."""
    dist = _distributed()
    if dist is not None and dist.is_initialized():
        return dist.get_rank()
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "0")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0


def _one_line(message: str) -> str:
    return " ".join(message.split("\n"))


# Optional dependencies (pip install -e ".[word2vec]", ".[plot]") are imported when first
# needed, so that the package and its other commands work without them.
class MissingExtraError(UserError):
    """A command needs a library of an optional extra that is not installed."""


def require(module: str, extra: str, needed_for: str) -> ModuleType:
    """``import module``, or a one-line error naming the extra that installs it.

    Args:
        module: the module to import, e.g. ``gensim.models``.
        extra: the extra of ``pyproject.toml`` that installs it, e.g. ``word2vec``.
        needed_for: what needs it, e.g. ``training word2vec``.

    Raises:
        MissingExtraError: the module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        missing = (exc.name or "").split(".")[0] == package
        # else installed but broken (e.g. built against another numpy): say what failed
        why = "is not installed" if missing else f"cannot be imported ({exc})"
        raise MissingExtraError(
            f'{needed_for} needs {package}, which {why}; pip install -e ".[{extra}]"'
        ) from None
