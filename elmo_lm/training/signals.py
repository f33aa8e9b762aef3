"""SIGTERM and Ctrl-C (SIGINT) stop a run at the end of the step they arrive in, with a checkpoint
of that step: ``Stopped`` (exit status 128 + the signal: 143, 130) carries it to the summary.

SIGTERM is Lightning's: its handler (also SLURM's requeue, which this leaves alone) sets
``trainer.received_sigterm``. Ctrl-C gets a handler here while ``fit`` runs, which only notes it
(a second Ctrl-C stops at once, unsaved), where Python would raise ``KeyboardInterrupt`` in the
middle of a step, which Lightning answers with exit status 1 and no checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import lightning as L

log = logging.getLogger(__name__)

STOPPED_CHECKPOINT = "stopped-step{step}.ckpt"
"""The checkpoint of the step a signal stopped (``checkpoints/``; ``ckpt_path=<run dir>`` takes
the newest of it, ``last.ckpt`` and ``latest-step*.ckpt``)."""


class Stopped(SystemExit):
    """A run stopped by ``signum`` after saving ``checkpoint`` at ``step``; exits 128 + signum."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        super().__init__(128 + signum)
        self.signum, self.step, self.checkpoint = signum, step, checkpoint

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        return f"stopped by {name} at step {self.step}: checkpoint {self.checkpoint}"


class StopOnSignal(L.Callback):
    """Saves a checkpoint at the end of the step a SIGTERM or SIGINT arrives in, then raises
    ``Stopped``. Under DDP every rank stops at the same step (one any-rank decision per step)."""

    def __init__(self, dirpath: str | os.PathLike):
        self.dirpath = Path(dirpath)
        self.signum: int | None = None
        self._previous = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.signum = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame) -> None:
        if self.signum is not None:  # the second Ctrl-C: now
            self._restore()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
            return
        self.signum = signal.SIGINT
        log.info("Ctrl-C: stopping at the end of this step with a checkpoint (again: now, unsaved)")

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        signum = self.signum or (signal.SIGTERM if trainer.received_sigterm else None)
        if trainer.world_size > 1:
            if not trainer.strategy.reduce_boolean_decision(signum is not None, all=False):
                return
            signum = signum or signal.SIGTERM
        if signum is None:
            return
        step = trainer.global_step
        path = self.dirpath / STOPPED_CHECKPOINT.format(step=step)
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            for old in self.dirpath.glob(STOPPED_CHECKPOINT.format(step="*")):
                if old != path:
                    old.unlink(missing_ok=True)
        self._restore()
        raise Stopped(int(signum), step, path)

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        self._restore()

    def teardown(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)
        self._previous = None
