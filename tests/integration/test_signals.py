"""SIGTERM (a scheduler's stop, SLURM's before its kill) and Ctrl-C (SIGINT) stop a run at the
end of the step they arrive in: a whole checkpoint of that step, the summary with the resume
command, and exit status 143 or 130; the resume continues from that step."""

from __future__ import annotations

import os
import signal
import subprocess

import lightning as L
import pytest
import torch

from tests.helpers import quick_overrides, run_train_py

SEND = "ELMO_TEST_SIGNAL_AT"


class SendSignal(L.Callback):
    """Sends ``$ELMO_TEST_SIGNAL_AT`` (``<signal>:<step>``) to this process at the start of
    that step, as ``kill -TERM`` or Ctrl-C from outside would; nothing without it."""

    def on_train_batch_start(self, trainer, *args):
        if not os.environ.get(SEND):
            return
        name, step = os.environ[SEND].split(":")
        if trainer.global_step == int(step):
            os.kill(os.getpid(), getattr(signal, name))


def _train(*argv: str, send: str | None = None) -> subprocess.CompletedProcess:
    return run_train_py(*argv, env={SEND: send or None})


@pytest.mark.parametrize(("name", "status"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_saves_the_step_prints_the_resume_command_and_exits_128_plus_it(
    tmp_path, name, status
):
    run = tmp_path / "run"
    argv = [
        *quick_overrides(tmp_path),
        f"hydra.run.dir={run}",
        "trainer.max_epochs=1",  # 17 steps
        "+callbacks.signal._target_=tests.integration.test_signals.SendSignal",
    ]
    stopped = _train(*argv, send=f"{name}:5")
    said = stopped.stdout + stopped.stderr
    assert stopped.returncode == status, said[-3000:]
    # The step it arrived in ran to its end and was saved, whole.
    saved = {
        p.name: torch.load(p, map_location="cpu", weights_only=True)["global_step"]
        for p in (run / "checkpoints").glob("*.ckpt")
    }
    assert saved == {"stopped-step6.ckpt": 6}, saved
    assert f"stopped by {name} at step 6" in said
    assert f"resume it: python train.py ckpt_path={run}" in said
    assert "Traceback" not in said

    resumed = _train(f"ckpt_path={run}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {run / 'checkpoints' / 'stopped-step6.ckpt'}" in (
        resumed.stdout + resumed.stderr
    )
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 17
