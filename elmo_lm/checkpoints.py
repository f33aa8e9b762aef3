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

from elmo_lm.atomic import remove_stale_temporaries
from elmo_lm.errors import UserError

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
    """Hyperparameters of earlier checkpoints, which kept two module arguments beside the
    options that record them, as the options alone keep them now."""
    hparams = dict(hparams)
    options = dict(hparams["options"])
    for old, new in (
        ("clip_norm", "all_clip_norm_val"),
        ("n_negative_samples", "n_negative_samples_batch"),
    ):
        if old in hparams:
            options[new] = hparams.pop(old)
    hparams["options"] = options
    return hparams


def bilm_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The ``BiLM`` state dict inside a checkpoint's module state dict."""
    return {k[5:]: v for k, v in checkpoint["state_dict"].items() if k.startswith("bilm.")}


def newest_that_loads(candidates: list[Path]) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest of ``candidates`` (by modification time) that ``read_checkpoint`` accepts,
    and the newer ones it skipped, each with the reason."""
    skipped = []
    for path in sorted(candidates, key=lambda p: p.stat().st_mtime_ns, reverse=True):
        try:
            read_checkpoint(path)
        except ValueError as exc:
            skipped.append((path, str(exc)))
            continue
        return path, skipped
    return None, skipped


RESUME_CHECKPOINTS = ("last.ckpt", "latest-step*.ckpt")
"""What a run directory offers to resume from: ``last.ckpt`` (written at each validation) and
the periodic ``latest-step<N>.ckpt`` (every ``callbacks.periodic.every_n_train_steps``)."""


def _run_checkpoints(run_dir: Path) -> list[Path]:
    return [p for pattern in RESUME_CHECKPOINTS for p in (run_dir / "checkpoints").glob(pattern)]


def resolve_ckpt_path(
    ckpt_path: str | None, runs_dir: Path, output_dir: Path, name: str | None = None
) -> str | None:
    """The checkpoint to resume from: a ``.ckpt`` file, a run directory (the newest of its
    ``checkpoints/last.ckpt`` and periodic ``latest-step*.ckpt`` that loads), or ``last``: the
    same among every earlier run under ``runs_dir/<name>`` (all of ``runs_dir`` without
    ``name``). Newer checkpoints that do not load are skipped with a warning naming them.

    Raises:
        CheckpointError: nothing to resume from; the message says what to pass.
    """
    if ckpt_path in (None, ""):
        return None
    if ckpt_path == "last":
        where = runs_dir / name if name else runs_dir
        runs = {c.parent.parent for c in where.glob("**/checkpoints/*.ckpt")}
        found = [
            p
            for run in runs
            if run.resolve() != output_dir.resolve()
            for p in _run_checkpoints(run)
        ]
        if not found:
            raise CheckpointError(
                f"ckpt_path=last: no checkpoints/last.ckpt or latest-step*.ckpt under {where}; "
                "pass ckpt_path=<run dir or .ckpt file>"
            )
        return str(_newest_that_loads(found, f"ckpt_path=last ({where})"))
    path = Path(ckpt_path)
    if path.is_dir():
        found = _run_checkpoints(path)
        for tmp in remove_stale_temporaries(path / "checkpoints"):
            log.warning("removed %s, left by a run killed while writing it", tmp)
        if found:
            return str(_newest_that_loads(found, f"ckpt_path={ckpt_path}"))
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise CheckpointError(
            f"ckpt_path={ckpt_path}: checkpoint not found; pass a .ckpt written by train.py, its "
            "run directory, or ckpt_path=last"
        )
    return str(path)


def _newest_that_loads(found: list[Path], what: str) -> Path:
    newest, skipped = newest_that_loads(found)
    for path, reason in skipped:
        log.warning("skipping %s: cannot be read as a checkpoint (%s)", path, reason)
    if newest is None:
        raise CheckpointError(
            f"{what}: none of its {len(found)} checkpoints can be read "
            f"({', '.join(str(p) for p, _ in skipped)}); pass ckpt_path=<a .ckpt that loads>"
        )
    log.info("resuming from %s", newest)
    return newest
