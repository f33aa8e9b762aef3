"""Reading checkpoints: those of earlier versions read as the current ones."""

from __future__ import annotations

import torch

from elmo_lm.formats.checkpoint import load_checkpoint
from elmo_lm.formats.options import BiLMOptions

VOCAB = ["<S>", "</S>", "<UNK>", "a"]


def _saved(path, hparams: dict):
    torch.save({"hyper_parameters": hparams, "state_dict": {"bilm.x": torch.zeros(1)}}, path)
    return path


def test_module_arguments_of_earlier_checkpoints_move_into_their_options(tmp_path):
    """Earlier checkpoints kept ``clip_norm`` and ``n_negative_samples`` as module arguments
    beside the options; they read as options now, where the argument's value wins."""
    options = BiLMOptions(all_clip_norm_val=10.0, n_negative_samples_batch=8192).to_dict()
    hparams = {"options": options, "vocab": VOCAB, "lr": 0.2, "clip_norm": 1.5}
    hparams["n_negative_samples"] = 64
    read = load_checkpoint(_saved(tmp_path / "old.ckpt", hparams))["hyper_parameters"]
    assert read == {
        "options": {**options, "all_clip_norm_val": 1.5, "n_negative_samples_batch": 64},
        "vocab": VOCAB,
        "lr": 0.2,
    }
    assert hparams["clip_norm"] == 1.5 and hparams["options"] == options  # not changed in place


def test_a_current_checkpoint_reads_as_it_was_saved(tmp_path):
    options = BiLMOptions(all_clip_norm_val=2.0, n_negative_samples_batch=16).to_dict()
    hparams = {"options": options, "vocab": VOCAB, "lr": 0.2, "seed": 3}
    read = load_checkpoint(_saved(tmp_path / "new.ckpt", hparams))["hyper_parameters"]
    assert read == hparams
