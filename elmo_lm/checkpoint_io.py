"""Checkpoints written whole or not at all.

Lightning's own writer stages a local checkpoint in the system's temporary directory and copies
it to its final name; a run killed during the copy (or a full disk) leaves a piece under the
final name and an orphan in ``/tmp``. ``AtomicCheckpointIO`` writes in the checkpoint's own
directory instead (``elmo_lm.atomic``): the final name always holds a whole checkpoint.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from elmo_lm.atomic import atomic_write, remove_stale_temporaries
from elmo_lm.errors import OutputError, os_reason

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` under a temporary name in the checkpoint's directory, fsync, rename.

    Remote paths (``s3://`` and the like) go to Lightning's writer unchanged.
    """

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
