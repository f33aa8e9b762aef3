"""Checkpoints written whole or not at all.

Lightning's own writer stages a local checkpoint in the system's temporary directory and copies
it to its final name; a run killed during the copy (or a full disk) leaves a piece under the
final name and an orphan in ``/tmp``. ``AtomicCheckpointIO`` writes in the checkpoint's own
directory instead (``elmo_lm.atomic``): the final name always holds a whole checkpoint.

A checkpoint it reads to resume from gives its callback states to the Trainer's callbacks under
their current keys (``elmo_lm.callbacks.keep_callback_states``), before Lightning matches them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from elmo_lm.atomic import atomic_write, remove_stale_temporaries
from elmo_lm.callbacks import keep_callback_states
from elmo_lm.errors import OutputError, os_reason

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` under a temporary name in the checkpoint's directory, fsync, rename.

    Remote paths (``s3://`` and the like) go to Lightning's writer unchanged.

    Attributes:
        trainer: the Trainer whose callbacks take a loaded checkpoint's callback states (set
            once the Trainer is built); None leaves the states as they are.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trainer = None

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            for tmp in remove_stale_temporaries(path.parent):
                log.warning("removed %s, left by a process that was killed while writing", tmp)
            with atomic_write(path) as f:
                torch.save(checkpoint, f)
        except OSError as exc:
            raise OutputError(
                f"{path}: cannot write the checkpoint: {os_reason(exc)}; the checkpoints already "
                f"in {path.parent} are whole: resume from the run directory"
            ) from None

    def load_checkpoint(self, path: str | os.PathLike, *args: Any, **kwargs: Any) -> dict[str, Any]:
        checkpoint = super().load_checkpoint(path, *args, **kwargs)
        if self.trainer is None or not checkpoint.get("callbacks"):
            return checkpoint
        states, changed, dropped = keep_callback_states(
            checkpoint["callbacks"], self.trainer.callbacks
        )
        checkpoint["callbacks"] = states
        if not self.trainer.is_global_zero:
            return checkpoint
        for line in changed:
            log.info("callback state kept under new settings: %s", line)
        if dropped:
            log.warning(
                "callback state not restored, as this run has no such callback: %s",
                "; ".join(dropped),
            )
        return checkpoint
