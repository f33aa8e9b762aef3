"""Writing files so that no reader ever sees half of one, and checking outputs before work.

A file is written under a temporary name in its own directory (``.<name>.<host>-<pid>.tmp``),
flushed, fsynced and renamed over the final name, then the directory is fsynced: at any instant
the final name holds the old file or the new one, never a piece. A process killed while writing
leaves only its temporary, which the next write into that directory removes
(``remove_stale_temporaries``).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from elmo_lm.errors import OutputError, os_reason

_HOST = socket.gethostname().replace(".", "_").replace("-", "_")


def temporary_name(path: str | os.PathLike) -> Path:
    """Where ``path`` is written before the rename: hidden, beside it, naming this process."""
    path = Path(path)
    return path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.tmp")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` to write (e.g. with h5py); when the block ends
    without an error the temporary is fsynced and renamed to ``path``, else removed."""
    path = Path(path)
    tmp = temporary_name(path)
    remove_stale_temporaries(path.parent, path.name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename in (str(tmp), tmp):
            exc.filename = str(path)  # the user knows the file by its final name
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """``open(path, mode)`` that replaces ``path`` only once the whole file is on disk."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f
        f.flush()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Replaces ``path`` with ``text`` (UTF-8) atomically."""
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temporaries(directory: str | os.PathLike, name: str = "*") -> list[Path]:
    """Temporaries of ``name`` in ``directory`` left by processes of this host that are gone."""
    found = []
    for tmp in Path(directory).glob(f".{name}.{_HOST}-*.tmp"):
        pid = tmp.name.rsplit("-", 1)[-1].removesuffix(".tmp")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            found.append(tmp)
    return found


def remove_stale_temporaries(directory: str | os.PathLike, name: str = "*") -> list[Path]:
    """Removes what ``stale_temporaries`` finds; returns the paths removed."""
    removed = []
    for tmp in stale_temporaries(directory, name):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def check_output_file(
    path: str | os.PathLike, what: str = "output", create_dir: bool = False
) -> Path:
    """Checks, before any work, that ``path`` can be written: not a directory, in a directory
    that exists (or is created with ``create_dir``) and accepts a new file.

    Raises:
        OutputError: naming the path and what to fix.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path}: is a directory; pass a file name (e.g. {path}/out.hdf5)")
    parent = path.parent
    above = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if above is not None and not above.is_dir():
        raise OutputError(f"{what} {path}: {above} is a file, not a directory; write elsewhere")
    if create_dir:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{what} {path}: cannot create its directory {exc.filename}: {os_reason(exc)}"
            ) from None
    if not parent.is_dir():
        why = "is not a directory" if parent.exists() else "does not exist"
        raise OutputError(
            f"{what} {path}: the directory {parent} {why}; create it or write elsewhere"
        )
    check_writable_dir(parent, f"{what} {path}")
    return path


def check_writable_dir(directory: str | os.PathLike, what: str = "directory") -> None:
    """Writes and removes a small file in ``directory`` (so a read-only filesystem or a full
    disk shows up even for root, whom permission bits do not stop)."""
    probe = temporary_name(Path(directory) / "write-probe")
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise OutputError(f"{what}: cannot write in {directory}: {os_reason(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
