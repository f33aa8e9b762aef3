"""Reading the checkpoints ``train.py`` writes, and finding the one to resume from.

The one reader of checkpoints (``Elmo.from_checkpoint``, ``ElmoLM.from_checkpoint``, evaluate,
export and resume use it); it needs torch only. A checkpoint describes itself: its
``hyper_parameters`` are ``ElmoLM``'s arguments as plain values, ``options`` among them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from elmo_lm.errors import UserError
from elmo_lm.formats.options import RUN_OPTIONS

log = logging.getLogger(__name__)


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable or not written by ``train.py``."""


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint at ``path``, its tensors mapped lazily from the file.

    Raises:
        ValueError: the file is not a whole checkpoint (the message says what is wrong).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch.load raises many kinds on a file that is not a checkpoint
        reason = str(exc).split("\n")[0].split(". ")[0][:160]
        raise ValueError(f"{type(exc).__name__}: {reason}") from None


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by ``train.py``: ``hyper_parameters`` (with ``options``) and
    ``state_dict``.

    Raises:
        CheckpointError: one line naming the file and what to pass instead.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: checkpoint not found; pass a .ckpt written by train.py "
            "(runs/<name>/<time>/checkpoints/last.ckpt)"
        )
    try:
        checkpoint = read_checkpoint(path)
    except ValueError as exc:
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint ({exc}); the file is truncated or not a "
            "checkpoint: pass another .ckpt, or the run directory to take the newest that loads"
        ) from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or "options" not in hparams or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path}: not a training checkpoint (no hyper_parameters.options or state_dict); "
            "pass a .ckpt written by train.py"
        )
    checkpoint["hyper_parameters"] = _current(hparams)
    return checkpoint


def _current(hparams: dict) -> dict:
    """Hyperparameters of earlier checkpoints, which kept the options of the ``module`` config
    (``clip_norm``, ``n_negative_samples``: ``RUN_OPTIONS``) as module arguments beside the
    options that record them, as the options alone keep them now."""
    hparams = dict(hparams)
    options = dict(hparams["options"])
    for option in RUN_OPTIONS:
        if option.module_key is not None and option.module_key in hparams:
            options[option.key] = hparams.pop(option.module_key)
    hparams["options"] = options
    return hparams


def bilm_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The ``BiLM`` state dict inside a checkpoint's module state dict."""
    return {k[5:]: v for k, v in checkpoint["state_dict"].items() if k.startswith("bilm.")}
