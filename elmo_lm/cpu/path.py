"""Which code a run takes: one switch, ``ELMO_LM_PATH``, read here and nowhere else.

``auto`` (the default): the native path on the CPU, the accelerator path on a GPU.
``native``: on the CPU, ``kernels.c``'s kernels where they build and oneDNN's products where
torch has them, each beside the torch operations it replaces.
``torch``: on the CPU, torch operations only (no C, no oneDNN), still with the CPU's
data-dependent shapes (each distinct token once, trimmed windows, coalesced rows).
``accelerator``: on the CPU, exactly the code a GPU runs: torch operations only, fixed shapes, no
host reads (``may_read_on_host`` says False), the foreach optimizer.

``ELMO_LM_NATIVE=0`` is an alias of ``ELMO_LM_PATH=torch`` (where ``ELMO_LM_PATH`` is unset) and
``ELMO_LM_ONEDNN=0`` keeps the chosen path but without oneDNN. Callers ask ``for_tensor`` (and
matmul ``onednn``); tests switch with ``use``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

ENV = "ELMO_LM_PATH"
PATHS = ("auto", "native", "torch", "accelerator")


@dataclass(frozen=True)
class Choice:
    """The switch's value: a name of ``PATHS``, and whether the native path may use oneDNN."""

    name: str = "auto"
    onednn: bool = True


def from_environment(environ: Mapping[str, str]) -> Choice:
    """The choice that ``environ`` (``os.environ``) makes, aliases included.

    Raises:
        ValueError: ``ELMO_LM_PATH`` names no path (a one-line message listing them).
    """
    name = environ.get(ENV, "").strip().lower()
    if not name:
        name = "torch" if environ.get("ELMO_LM_NATIVE", "1") == "0" else "auto"
    if name not in PATHS:
        raise ValueError(f"{ENV}={environ[ENV]!r} is not a path; use one of {', '.join(PATHS)}")
    return Choice(name, onednn=environ.get("ELMO_LM_ONEDNN", "1") != "0")


_environment: list[Choice] = []  # the environment's choice, read once, on first use
_override: list[Choice] = []  # use()'s choices, innermost last


def chosen() -> Choice:
    """The choice in force: the innermost ``use``, else the environment's."""
    if _override:
        return _override[-1]
    if not _environment:
        _environment.append(from_environment(os.environ))
    return _environment[0]


@contextlib.contextmanager
def use(name: str, *, onednn: bool = True) -> Iterator[Choice]:
    """Runs the block on path ``name`` (as if ``ELMO_LM_PATH=name``; ``onednn=False`` as
    ``ELMO_LM_ONEDNN=0``), then restores the path before it."""
    if name not in PATHS:
        raise ValueError(f"{name!r} is not a path; use one of {', '.join(PATHS)}")
    choice = Choice(name, onednn)
    _override.append(choice)
    try:
        yield choice
    finally:
        _override.pop()


def _on_the_cpu(t: torch.Tensor) -> str:
    """The path for ``t`` before torch.compile's say: native, torch or accelerator."""
    name = chosen().name
    if t.device.type != "cpu" or name == "accelerator":
        return "accelerator"
    return "torch" if name == "torch" else "native"


def for_tensor(t: torch.Tensor) -> str:
    """The path that code working on ``t`` takes: ``"native"``, ``"torch"`` or
    ``"accelerator"``. Inside a graph that torch.compile traces the native path is ``"torch"``:
    no C call there."""
    found = _on_the_cpu(t)
    if found == "native" and torch.compiler.is_compiling():
        return "torch"
    return found


def onednn(t: torch.Tensor) -> bool:
    """Whether products of ``t`` may go to oneDNN: on the native path, oneDNN not switched off.

    oneDNN's products are torch operators, which a compiled graph holds as it does any other,
    so unlike ``for_tensor`` this does not change under torch.compile.
    """
    return chosen().onednn and _on_the_cpu(t) == "native"


def may_read_on_host(t: torch.Tensor) -> bool:
    """Whether code working on ``t`` may read its values on the host: on the CPU, except on
    the accelerator path.

    Reading a value on the host (``.item()``, ``.tolist()``, a shape that follows the data, as
    ``unique`` or ``nonzero`` give) waits for the device to finish everything queued before it.
    On the CPU that costs nothing and lets work follow the data (each distinct token through the
    char CNN once, windows only as long as the batch's longest token, coalesced sparse rows); on
    an accelerator it stalls the stream, so there a training step keeps fixed shapes instead and
    is one stream of kernels. ``ELMO_LM_PATH=accelerator`` runs that code on the CPU.
    """
    return for_tensor(t) != "accelerator"


def allow_tf32(device: torch.device | str) -> None:
    """On a GPU, lets float32 products run in TF32 (``torch.set_float32_matmul_precision
    ("high")``): 8x the matmul throughput of strict float32 on Ampere and later, with float32's
    range and a 10-bit mantissa, which the LM's training does not feel. Called wherever the
    model runs on a GPU (training, embedding, the benchmarks); ``ELMO_LM_TF32=0`` keeps
    strict float32. Nothing on other devices."""
    if torch.device(device).type != "cuda" or os.environ.get("ELMO_LM_TF32", "1") == "0":
        return
    if torch.get_float32_matmul_precision() == "highest":
        torch.set_float32_matmul_precision("high")
