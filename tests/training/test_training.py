"""Training end to end on tiny corpora: learning, resuming, fine-tuning, the softmax switch,
state carrying, gradient clipping and the errors a user can cause."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import torch

from elmo_lm.commands.evaluate import evaluate
from elmo_lm.commands.export import export
from elmo_lm.errors import TrainingError, UserError
from elmo_lm.training.gradients import clip_grad_norm
from elmo_lm.training.module import ElmoLM
from elmo_lm.training.run import train
from tests.helpers import ROOT


@pytest.mark.slow
def test_tiny_model_learns_a_tiny_corpus(train_config, tmp_path):
    metrics = train(train_config(tmp_path, "trainer.max_epochs=12", "module.lr=0.5"))
    assert metrics["val/ppl"] < 2.5, metrics  # from about 13 (uniform over the vocabulary)
    run = tmp_path / "runs" / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1
    assert (run / "vocab.txt").read_text().split("\n")[:3] == ["<S>", "</S>", "<UNK>"]
    # The checkpoint rebuilds the module without any config, and evaluates to what was logged.
    module = ElmoLM.load_from_checkpoint(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert module.options.n_train_tokens == 1000 and module.options.n_tokens_vocab == 13
    # TensorBoard has the training and validation perplexities.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    # The best checkpoint evaluates to the best logged held-out perplexity.
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    held_out = evaluate(best, tmp_path / "valid.txt", device="cpu")
    logged = min(e.value for e in events.Scalars("val/ppl"))
    assert held_out["ppl"] == pytest.approx(logged, rel=1e-5)
    assert {"train/ppl", "val/ppl", "val/ppl_fwd", "val/ppl_bwd", "train/tokens_per_s"} <= tags
    assert {"train/lr", "train/grad_norm"} <= tags


def test_resume_continues_from_the_saved_step(train_config, tmp_path):
    quick = ("trainer.limit_train_batches=4", "name=exp")
    train(train_config(tmp_path, "trainer.max_epochs=1", *quick, name="exp/a"))
    first = tmp_path / "runs" / "exp" / "a" / "checkpoints" / "last.ckpt"
    assert torch.load(first, weights_only=True)["global_step"] == 4
    train(
        train_config(tmp_path, "trainer.max_epochs=2", *quick, f"ckpt_path={first}", name="exp/b")
    )
    second = tmp_path / "runs" / "exp" / "b" / "checkpoints" / "last.ckpt"
    assert torch.load(second, weights_only=True)["global_step"] == 8
    assert torch.load(second, weights_only=True)["epoch"] == 1
    # A newer run of another experiment, which ckpt_path=last must not take.
    other = tmp_path / "runs" / "other" / "x" / "checkpoints" / "last.ckpt"
    other.parent.mkdir(parents=True)
    other.write_bytes(first.read_bytes())
    # ckpt_path=last: the newest checkpoint of an earlier run of this name (here b's).
    train(train_config(tmp_path, "trainer.max_epochs=3", *quick, "ckpt_path=last", name="exp/c"))
    third = tmp_path / "runs" / "exp" / "c" / "checkpoints" / "last.ckpt"
    assert torch.load(third, weights_only=True)["global_step"] == 12


def test_fine_tune_from_an_exported_pair(train_config, tmp_path):
    train(train_config(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=3", name="a"))
    paths = export(tmp_path / "runs" / "a" / "checkpoints" / "last.ckpt", tmp_path / "w.hdf5")
    # A new corpus with its own (given) vocabulary.
    vocab = tmp_path / "new_vocab.txt"
    vocab.write_text("\n".join(["<S>", "</S>", "<UNK>", "w3", "w4", "zz"]) + "\n")
    cfg = train_config(
        tmp_path,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        f"init_from={paths['weights']}",
        f"data.vocab_file={vocab}",
        "model=small",  # ignored: the shape comes from the options.json
        name="b",
    )
    train(cfg)
    module = ElmoLM.load_from_checkpoint(tmp_path / "runs" / "b" / "checkpoints" / "last.ckpt")
    assert module.hparams["vocab"][3:] == ["w3", "w4", "zz"]
    assert module.options.lstm.dim == 32  # tiny, from the exported options


@pytest.mark.parametrize("published", ["fixtures", "sample"])
def test_a_published_options_json_is_a_model_config(train_config, tmp_path, published, request):
    """options.json as it is, dropped into a config directory's model/ group, trains; the run's
    options are its biLM and this run's settings (not the ones the file recorded)."""
    if published == "fixtures":
        source = request.getfixturevalue("elmo_fixtures") / "options.json"
    else:
        source = ROOT / "models" / "sample" / "options.json"
    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "published.yaml").write_text(source.read_text())
    cfg = train_config(
        tmp_path,
        f"hydra.searchpath=[file://{conf}]",
        "trainer.max_steps=1",
        "trainer.limit_val_batches=1",
        model="published",
    )
    train(cfg)
    module = ElmoLM.from_checkpoint(tmp_path / "runs" / "run" / "checkpoints" / "last.ckpt")
    written = json.loads(source.read_text())
    trained = module.options.to_dict()
    assert trained["lstm"] == {**trained["lstm"], **written["lstm"]}
    assert trained["char_cnn"] == {**trained["char_cnn"], **written["char_cnn"]}
    assert trained["batch_size"] == 8 and trained["unroll_steps"] == 10
    assert trained["n_tokens_vocab"] == 13 and trained["n_train_tokens"] == 1000


def test_a_run_sets_the_process_wide_settings_before_it_trains(train_config, tmp_path, monkeypatch):
    """train() keeps freed memory for the next step's buffers and builds sparse tensors
    unchecked, before the first step (every process that trains, each DDP rank, calls it)."""
    from elmo_lm.training import run

    calls = []
    monkeypatch.setattr(run, "keep_freed_memory", lambda: calls.append("keep_freed_memory"))
    seen = {}

    def on_train_start(self):
        seen["calls"] = list(calls)
        seen["sparse_checks"] = torch.sparse.check_sparse_tensor_invariants.is_enabled()

    monkeypatch.setattr(ElmoLM, "on_train_start", on_train_start)
    torch.sparse.check_sparse_tensor_invariants.enable()  # as a caller may have left it
    try:
        train(train_config(tmp_path, "trainer.max_steps=1", "trainer.limit_val_batches=0"))
    finally:
        torch.sparse.check_sparse_tensor_invariants.disable()
    assert seen == {"calls": ["keep_freed_memory"], "sparse_checks": False}


def test_sampled_softmax_trains_and_validates_with_the_full_one(train_config, tmp_path):
    metrics = train(
        train_config(
            tmp_path,
            "module.n_negative_samples=5",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
        )
    )
    assert "train/sampled_ppl" in metrics and "train/ppl" not in metrics
    assert 1 < metrics["val/ppl"] < 100


def test_small_vocabulary_switches_to_the_full_softmax(train_config, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="elmo_lm.training.lm_kinds"):
        metrics = train(
            train_config(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=2")
        )
    assert "full softmax" in caplog.text
    assert "train/ppl" in metrics
    with pytest.raises(TrainingError, match="n_negative_samples=8192"):
        train(train_config(tmp_path, "module.softmax=sampled", name="b"))


@pytest.mark.slow
def test_errors_are_one_line(train_config, tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        train(train_config(tmp_path, f"ckpt_path={tmp_path / 'missing.ckpt'}"))
    with pytest.raises(UserError, match="ckpt_path=last"):
        train(train_config(tmp_path, "ckpt_path=last"))
    with pytest.raises(UserError, match="checkpoint not found"):
        evaluate(tmp_path / "missing.ckpt", tmp_path / "valid.txt")
    for cmd in (
        ["train.py", f"ckpt_path={tmp_path / 'missing.ckpt'}", "model=tiny"],
        ["export.py", f"ckpt={tmp_path / 'missing.ckpt'}", f"out={tmp_path / 'w.hdf5'}"],
    ):
        result = subprocess.run(
            [sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and "checkpoint not found" in lines[-1]
        assert "Traceback" not in result.stderr


def test_state_is_carried_per_stream_and_reset(tiny_options, tmp_path):

    vocab = ["<S>", "</S>", "<UNK>", "a", "b"]
    module = ElmoLM(tiny_options().to_dict(), vocab, reset_state_prob=0.0)
    seen, ends = [], []
    original = module.bilm.lm_forward

    def recording(fwd, bwd, state=None, *tokens, **batch_tokens):
        seen.append(state)
        out = original(fwd, bwd, state, *tokens, **batch_tokens)
        ends.append(out[2])
        return out

    module.bilm.lm_forward = recording

    def batch(stream, reset):
        chars = torch.randint(1, 50, (2, 3, 50))
        return {
            "fwd_chars": chars,
            "bwd_chars": chars.flip(1),
            "fwd_targets": torch.randint(0, 5, (2, 3)),
            "bwd_targets": torch.randint(0, 5, (2, 3)),
            "stream_id": stream,
            "reset": reset,
        }

    module.log = lambda *args, **kwargs: None  # no Trainer here
    module.training_step(batch(0, True), 0)
    module.training_step(batch(1, True), 1)
    module.training_step(batch(0, False), 2)
    module.training_step(batch(0, True), 3)
    assert seen[0] is None and seen[1] is None and seen[3] is None
    carried = seen[2]
    assert carried is not None and not any(t.requires_grad for t in carried)
    # Exactly the state stream 0's first batch ended in, not stream 1's.
    assert all(torch.equal(c, e.detach()) for c, e in zip(carried, ends[0]))
    assert not torch.equal(carried[0], ends[1][0].detach())


def test_clip_grad_norm_handles_sparse_gradients():
    dense = torch.nn.Parameter(torch.zeros(3))
    sparse = torch.nn.Parameter(torch.zeros(5, 2))
    dense.grad = torch.tensor([3.0, 0.0, 0.0])
    # Row 1 twice (uncoalesced): its gradient is their sum (4, 0).
    sparse.grad = torch.sparse_coo_tensor([[1, 1]], torch.tensor([[1.0, 0.0], [3.0, 0.0]]), (5, 2))
    norm = clip_grad_norm([dense, sparse], max_norm=1.0)
    assert float(norm) == pytest.approx(5.0)
    assert sparse.grad.is_sparse
    torch.testing.assert_close(
        sparse.grad.to_dense()[1], torch.tensor([0.8, 0.0]), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(dense.grad, torch.tensor([0.6, 0.0, 0.0]), atol=1e-5, rtol=0)


def test_a_resume_with_other_data_settings_is_one_line():
    from elmo_lm.formats.options import BiLMOptions
    from elmo_lm.training.run import check_resume

    trained = BiLMOptions(batch_size=8, unroll_steps=10)
    hparams = {"options": trained.to_dict(), "vocab": ["<S>", "</S>", "<UNK>", "a"]}
    check_resume("last.ckpt", hparams, trained, hparams["vocab"])
    other = BiLMOptions(batch_size=16, unroll_steps=10)
    with pytest.raises(TrainingError) as err:
        check_resume("last.ckpt", hparams, other, ["<S>", "</S>", "<UNK>", "b", "c"])
    assert str(err.value) == (
        "last.ckpt: resumed with other data settings: data.batch_size=16 (the checkpoint's: 8); "
        "a vocabulary of 5 tokens (the checkpoint's: 4; pass data.vocab_file=<the run's "
        "vocab.txt>)"
    )


def test_an_unknown_elmo_lm_path_is_one_line_before_any_work(train_config, tmp_path, monkeypatch):
    from elmo_lm.cpu import path
    from elmo_lm.errors import TrainingError

    monkeypatch.setenv("ELMO_LM_PATH", "gpu")
    monkeypatch.setattr(path, "_environment", [])  # read the environment again
    with pytest.raises(TrainingError, match=r"^ELMO_LM_PATH='gpu' is not a path; use one of auto,"):
        train(train_config(tmp_path))
    assert not (tmp_path / "runs" / "run" / "vocab.txt").exists()
