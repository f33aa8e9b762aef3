"""Exporting a checkpoint to options.json + weights.hdf5 + vocab.txt, and loading it back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.formats.characters import batch_to_ids
from elmo_lm.model.bilm import BiLM
from elmo_lm.training.module import ElmoLM
from elmo_lm.training.run import train
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def checkpoint(train_config, tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("export")
    train(train_config(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=3"))
    return tmp_path / "runs" / "run" / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_export_command_writes_the_three_files(checkpoint, tmp_path):
    out = tmp_path / "model" / "weights.hdf5"
    result = subprocess.run(
        [sys.executable, "export.py", f"ckpt={checkpoint}", f"out={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    options = json.loads((out.parent / "options.json").read_text())
    module = ElmoLM.from_checkpoint(checkpoint)
    assert options["char_cnn"]["n_characters"] == 262
    assert options["n_tokens_vocab"] == len(module.hparams["vocab"]) == 13
    assert options["n_train_tokens"] == 1000  # the corpus's words, counted
    assert options["unroll_steps"] == 10 and options["batch_size"] == 8
    assert Vocabulary.from_file(out.parent / "vocab.txt").tokens == module.hparams["vocab"]

    # The directory loads as from_pretrained reads one and gives the trained model's layers.
    assert f"elmo-embed model={out.parent} " in result.stdout
    exported = BiLM.from_pretrained(out.parent).eval()
    trained = module.bilm.eval()
    ids = batch_to_ids([["w1", "w2", "w3"], ["w7", "never-seen", "w9", "w0", "w1"]])
    with torch.no_grad():
        got, want = exported(ids), trained(ids)
    assert len(got["layers"]) == len(want["layers"]) == 3
    for a, b in zip(got["layers"], want["layers"]):
        torch.testing.assert_close(a, b)


def test_checkpoint_loads_without_the_config(checkpoint):
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    hparams = ckpt["hyper_parameters"]
    assert set(hparams) == {
        "options",
        "vocab",
        "lr",
        "initial_accumulator_value",
        "softmax",
        "seed",
        "reset_state_prob",
        "tokenizer",
    }
    # Settings options.json records are stored there only, once.
    assert hparams["options"]["all_clip_norm_val"] == 10.0
    assert hparams["options"]["n_negative_samples_batch"] == 8192
    assert json.loads(json.dumps(hparams)) == hparams  # plain values only
    assert any(k.startswith("bilm.") for k in ckpt["state_dict"])
    assert "softmax.weight" in ckpt["state_dict"] and "softmax_bwd.weight" not in ckpt["state_dict"]


@pytest.mark.parametrize("existing", ["weights.hdf5", "options.json", "vocab.txt"])
def test_an_existing_export_is_refused_without_overwrite(tmp_path, existing):
    from elmo_lm.commands.export import main

    (tmp_path / existing).write_text("keep me\n")
    with pytest.raises(SystemExit) as exit:
        # refused before the checkpoint is read: no work is lost
        main([f"ckpt={tmp_path / 'missing.ckpt'}", f"out={tmp_path / 'weights.hdf5'}"])
    assert exit.value.code == (
        f"error: {tmp_path / existing}: exists; pass overwrite=true to replace the export "
        "there (weights.hdf5, options.json, vocab.txt)"
    )
    assert (tmp_path / existing).read_text() == "keep me\n"
    assert [p.name for p in tmp_path.iterdir()] == [existing]  # nothing else written


def test_overwrite_replaces_the_three_files(checkpoint, tmp_path):
    from elmo_lm.commands.export import export

    out = tmp_path / "weights.hdf5"
    for name in ("weights.hdf5", "options.json", "vocab.txt"):
        (tmp_path / name).write_text("old\n")
    paths = export(checkpoint, out, overwrite=True)
    assert json.loads(paths["options"].read_text())["char_cnn"]["n_characters"] == 262
    assert paths["vocab"].read_text().startswith("<S>\n</S>\n<UNK>\n")
    assert BiLM.from_pretrained(tmp_path) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "options.json",
        "vocab.txt",
        "weights.hdf5",
    ]  # written atomically: no temporary left
