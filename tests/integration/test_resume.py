"""A run killed mid-epoch resumes from its last checkpoint with the data where it stopped, its
progress bar where it was, and its callbacks' state."""

import logging
import re
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from elmo_lm.training.checkpointing import keep_callback_states
from elmo_lm.training.run import train


class Recorder(Callback):
    """Keeps the forward targets of every training batch; raises at ``kill_at`` (a crash)."""

    batches: list[torch.Tensor] = []

    def __init__(self, kill_at: int = -1):
        self.kill_at = kill_at

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.kill_at:
            raise RuntimeError("killed")
        Recorder.batches.append(batch["fwd_targets"].clone())


class BarWatcher(Callback):
    """Keeps what the training progress bar shows at the start of every batch."""

    seen: list[tuple[str, int, int | None, int]] = []
    n_batches = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        bar = trainer.progress_bar_callback.train_progress_bar
        BarWatcher.seen.append((bar.desc, bar.n, bar.total, bar.initial))
        BarWatcher.n_batches = trainer.num_training_batches


def run_recorded(train_config, tmp_path, name, *overrides):
    Recorder.batches = []
    BarWatcher.seen = []
    train(
        train_config(
            tmp_path,
            "trainer.max_epochs=1",
            "+callbacks.recorder._target_=tests.integration.test_resume.Recorder",
            *overrides,
            name=name,
        )
    )
    return Recorder.batches


def kill_at_7(train_config, tmp_path, *overrides):
    """Trains run ``killed`` with a checkpoint every 7 steps and kills it at step 7 (the
    Recorder raises); returns its run directory."""
    with pytest.raises(RuntimeError, match="killed"):
        run_recorded(
            train_config,
            tmp_path,
            "killed",
            *overrides,
            "+callbacks.recorder.kill_at=7",
            "callbacks.periodic.every_n_train_steps=7",
        )
    return tmp_path / "runs" / "killed"


@pytest.mark.parametrize("workers", [0, 2])
def test_killed_run_resumes_mid_epoch_without_repeating_or_skipping_data(
    train_config, tmp_path, workers
):
    loader = f"data.num_workers={workers}"
    whole = run_recorded(train_config, tmp_path, "whole", loader)
    assert len(whole) > 10
    with pytest.raises(RuntimeError, match="killed"):
        run_recorded(
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
    after = run_recorded(train_config, tmp_path, "resumed", loader, f"ckpt_path={run}")
    assert len(before) == 7 and len(before) + len(after) == len(whole)
    for a, b in zip(before + after, whole):
        assert torch.equal(a, b)


@pytest.mark.parametrize("max_steps", [-1, 12])
def test_the_progress_bar_of_a_resumed_run_shows_its_epoch_total_and_position(
    train_config, tmp_path, max_steps, capsys
):
    """Killed at step 7 of epoch 0, resumed: the bar goes on from 7 of the same total (with
    max_steps=-1, on into a second epoch)."""
    if max_steps > 0:
        limits = ("trainer.max_epochs=-1", f"trainer.max_steps={max_steps}")
    else:
        limits = ("trainer.max_epochs=2",)
    bar = (
        "trainer.enable_progress_bar=true",
        "+callbacks.bar._target_=tests.integration.test_resume.BarWatcher",
    )
    kill_at_7(train_config, tmp_path, *limits, *bar)
    n_batches = BarWatcher.n_batches
    assert n_batches > 12
    total = n_batches if max_steps < 0 else max_steps
    assert BarWatcher.seen[0] == ("Epoch 0: ", 0, total, 0)
    killed = tmp_path / "runs" / "killed"
    capsys.readouterr()
    run_recorded(train_config, tmp_path, "resumed", *limits, *bar, f"ckpt_path={killed}")
    # Not even while the next epoch's bar is reset: rates such as "-3.2e+05it/s".
    assert not re.findall(r"-[0-9.e+]+it/s", capsys.readouterr().out)
    # Lightning's own bar shows ("Training", 0, None, 0): no epoch, no total, no position.
    # initial: tqdm's rate counts the batches run since the resume.
    epoch_0 = [s for s in BarWatcher.seen if s[0] == "Epoch 0: "]
    assert epoch_0[0] == ("Epoch 0: ", 7, total, 7)
    assert epoch_0[-1] == ("Epoch 0: ", total - 1, total, 7)
    if max_steps < 0:
        assert BarWatcher.seen[len(epoch_0)] == ("Epoch 1: ", 0, n_batches, 0)
        assert len(BarWatcher.seen) == len(epoch_0) + n_batches


def test_a_run_resumed_without_its_callback_overrides_keeps_their_state(
    train_config, tmp_path, caplog, recwarn
):
    quick = ("trainer.limit_train_batches=4",)
    first = train(
        train_config(
            tmp_path,
            "trainer.max_epochs=1",
            *quick,
            "callbacks.periodic.every_n_train_steps=3",
            "+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping",
            "+callbacks.stop.monitor=val/ppl",
            name="a",
        )
    )
    run = tmp_path / "runs" / "a"
    with caplog.at_level(logging.INFO):
        second = train(
            train_config(tmp_path, "trainer.max_epochs=2", *quick, f"ckpt_path={run}", name="b")
        )
    # Neither of Lightning's warnings about callbacks of another run or directory.
    noise = ("callbacks used to create the checkpoint", "The dirpath has changed")
    assert not [w for w in recwarn if any(n in str(w.message) for n in noise)]
    notes = [r.getMessage() for r in caplog.records if "callback state" in r.getMessage()]
    assert notes == [
        "callback state kept under new settings: "
        "ModelCheckpoint(monitor=step, mode=max): every_n_train_steps 3 -> 200",
        "callback state not restored, as this run has no such callback: "
        "EarlyStopping{'monitor': 'val/ppl', 'mode': 'min'}",
    ]
    states = torch.load(run.parent / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    states = {k.split(",")[0]: s for k, s in states["callbacks"].items()}
    # The periodic checkpoint (every 200 steps now) never saved in b: its newest is still a's.
    periodic = states["ModelCheckpoint{'monitor': 'step'"]
    assert [Path(p) for p in periodic["best_k_models"]] == [
        (run / "checkpoints" / "latest-step3.ckpt").resolve()
    ]
    # The best held-out perplexity is that of both runs.
    best = states["ModelCheckpoint{'monitor': 'val/ppl'"]
    assert float(best["best_model_score"]) == pytest.approx(
        min(first["val/ppl"], second["val/ppl"])
    )
    assert Path(best["best_model_path"]).is_file()


def test_callback_states_go_to_the_callback_of_the_same_class_and_monitor():
    def checkpoint(monitor, mode, **kwargs):
        return ModelCheckpoint(dirpath="/new", monitor=monitor, mode=mode, **kwargs)

    old = [
        checkpoint("val/ppl", "min"),
        checkpoint("step", "max", every_n_train_steps=7),
        EarlyStopping(monitor="val/ppl"),
    ]
    states = {c.state_key: {"dirpath": "/old", "of": i} for i, c in enumerate(old)}
    new = [checkpoint("step", "max", every_n_train_steps=200), checkpoint("val/ppl", "max")]
    kept, changed, dropped = keep_callback_states(states, new)
    assert kept == {new[0].state_key: {"dirpath": "/new", "of": 1}}
    assert changed == ["ModelCheckpoint(monitor=step, mode=max): every_n_train_steps 7 -> 200"]
    # val/ppl in another mode is another score; nothing left takes early stopping's state.
    assert dropped == [old[0].state_key, old[2].state_key]
