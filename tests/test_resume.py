"""A run killed mid-epoch resumes from its last checkpoint with the data where it stopped."""

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from elmo_lm.training import train


class Recorder(Callback):
    """Keeps the forward targets of every training batch; raises at ``kill_at`` (a crash)."""

    batches: list[torch.Tensor] = []

    def __init__(self, kill_at: int = -1):
        self.kill_at = kill_at

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.kill_at:
            raise RuntimeError("killed")
        Recorder.batches.append(batch["fwd_targets"].clone())


def _run(train_config, tmp_path, name, *overrides):
    Recorder.batches = []
    train(
        train_config(
            tmp_path,
            "trainer.max_epochs=1",
            "+callbacks.recorder._target_=test_resume.Recorder",
            *overrides,
            name=name,
        )
    )
    return Recorder.batches


@pytest.mark.parametrize("workers", [0, 2])
def test_killed_run_resumes_mid_epoch_without_repeating_or_skipping_data(
    train_config, tmp_path, workers
):
    loader = f"data.num_workers={workers}"
    whole = _run(train_config, tmp_path, "whole", loader)
    assert len(whole) > 10
    with pytest.raises(RuntimeError, match="killed"):
        _run(
            train_config,
            tmp_path,
            "killed",
            loader,
            "+callbacks.recorder.kill_at=7",
            "callbacks.periodic.every_n_train_steps=7",
        )
    before = Recorder.batches
    run = tmp_path / "runs" / "killed"
    assert not (run / "checkpoints" / "last.ckpt").exists()  # killed before any validation
    saved = list((run / "checkpoints").glob("latest-step*.ckpt"))
    assert [torch.load(p, weights_only=True)["global_step"] for p in saved] == [7]
    after = _run(train_config, tmp_path, "resumed", loader, f"ckpt_path={run}")
    assert len(before) == 7 and len(before) + len(after) == len(whole)
    for a, b in zip(before + after, whole):
        assert torch.equal(a, b)
