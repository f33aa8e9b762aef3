"""The run's own callbacks (its metrics file, layer table and progress bar), and how a resumed
run's callbacks take over the state its checkpoint holds."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from elmo_lm.formats.atomic import write_text

log = logging.getLogger(__name__)


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


class ModelSummary(L.pytorch.callbacks.ModelSummary):
    """Lightning's layer table without its FLOPs column and total when they are all zero (they
    are counted only for a model run once on an example input, which this one is not)."""

    @staticmethod
    def summarize(
        summary_data,
        total_parameters,
        trainable_parameters,
        model_size,
        total_training_modes,
        total_flops,
        **kwargs,
    ) -> None:
        from lightning.pytorch.utilities.model_summary.model_summary import (
            _format_summary_table,
        )

        table = _without_flops(summary_data)
        text = _format_summary_table(
            total_parameters,
            trainable_parameters,
            model_size,
            total_training_modes,
            total_flops,
            *table,
        )
        if len(table) < len(summary_data):
            text = "\n".join(line for line in text.split("\n") if not line.endswith("Total Flops"))
        log.info("\n" + text)


def _without_flops(summary_data: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    return [
        (name, values)
        for name, values in summary_data
        if not (name == "FLOPs" and all(str(v).strip() == "0" for v in values))
    ]


class ProgressBar(TQDMProgressBar):
    """Lightning's bar, which after a resume also shows the epoch, its total and the batches it
    had done: Lightning does not call ``on_train_epoch_start`` for the epoch a checkpoint was
    saved in, where its bar sets them.

    It shows the module's ``progress_metrics`` (train/ppl, tokens/s), read as numbers on the
    steps that logged them (``logged_this_step``) and kept for the steps between. They are not
    logged with ``prog_bar=True``: Lightning would read every such metric as a number at every
    step's end, and on a GPU each read waits for the device to finish the step.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._shown: dict[str, float] = {}

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        keys = getattr(pl_module, "progress_metrics", ())
        if trainer.training and getattr(pl_module, "logged_this_step", True):
            found = trainer.callback_metrics
            self._shown.update({k: float(found[k]) for k in keys if k in found})
        return {**super().get_metrics(trainer, pl_module), **self._shown}

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        # Before Lightning's reset redraws the bar: a rate counted from 0, not from a resume.
        self.train_progress_bar.initial = 0
        super().on_train_epoch_start(trainer, *args)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        loop = trainer.fit_loop
        if not (loop.restarted_mid_epoch or loop.restarted_on_epoch_end):
            return
        self.on_train_epoch_start(trainer, pl_module)
        # A checkpoint saved at a batch's end counts it as processed (ElmoDataModule resumes
        # the data after the same count).
        done = loop.epoch_loop.batch_progress.current.processed
        bar = self.train_progress_bar
        if bar.total is not None and bar.total < trainer.num_training_batches:
            # Lightning's total counts the steps left (max_epochs=-1), from the epoch's start.
            bar.total = min(trainer.num_training_batches, bar.total + done)
        # initial: tqdm's rate counts the batches of this run only.
        bar.initial = bar.n = bar.last_print_n = done
        bar.refresh()
