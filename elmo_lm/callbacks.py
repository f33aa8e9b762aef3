"""Callbacks that keep a run's files current, so a killed run has them too."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L

from elmo_lm.atomic import write_text


def plain_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The trainer's logged metrics as plain floats, sorted by name."""
    return {k: float(v) for k, v in sorted(trainer.callback_metrics.items())}


class MetricsFile(L.Callback):
    """Rewrites ``path`` (JSON of the logged metrics, ``val/ppl`` and friends) after every
    validation, atomically, from rank 0: a run killed at any moment has the last one."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        write_text(self.path, json.dumps(plain_metrics(trainer), indent=2) + "\n")
