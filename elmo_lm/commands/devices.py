"""The one reading of ``device=`` for every command that takes it (``evaluate.py``,
``elmo-embed``): a name this machine has, or a one-line error that says what to pass."""

from __future__ import annotations

import torch

from elmo_lm.commands.args import ArgumentError

CHOICES = "auto, cpu, cuda, cuda:N or mps"


def parse_device(name: str | torch.device, key: str = "device") -> torch.device:
    """The device ``name`` stands for: ``auto`` (``cuda`` when there is one, else ``cpu``),
    ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises:
        ArgumentError: not a device name (``gpu``), a kind these commands do not run on
            (``meta``), or a device this machine does not have (``cuda`` without CUDA,
            ``cuda:2`` with two GPUs, ``mps`` off a Mac); one line naming ``key=name``.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ArgumentError(f"{key}={name}: not a device; use {CHOICES}") from None
    if device.type == "cuda":
        n_gpus = torch.cuda.device_count()
        if n_gpus == 0:
            raise ArgumentError(
                f"{key}={name}: this machine has no CUDA device; use {key}=cpu or {key}=auto"
            )
        if (device.index or 0) >= n_gpus:
            have = "one CUDA device, cuda:0" if n_gpus == 1 else f"{n_gpus} CUDA devices"
            raise ArgumentError(
                f"{key}={name}: this machine has {have}; use cuda:N with N < {n_gpus} or cpu"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ArgumentError(
                f"{key}={name}: this machine has no MPS (Apple GPU) device; use {key}=cpu or "
                f"{key}=auto"
            )
    elif device.type != "cpu":
        raise ArgumentError(f"{key}={name}: not a device these commands run on; use {CHOICES}")
    return device
