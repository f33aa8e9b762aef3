"""Corpus text is never config: tokens such as ``${HOME}`` or ``${`` (shell, Makefile and template
text, or binary junk) go into the vocabulary, the checkpoint and the logs as they are, never
through OmegaConf's interpolation."""

from __future__ import annotations

import pytest
import torch

from elmo_lm.errors import UserError
from elmo_lm.training.run import train

JUNK = ["${HOME}", "${oc.env:X}", "${", "}", "$${x}", "${a.b}", "${foo:bar}", "\\${y}", "\x01\x7f"]


def _corpus(path, extra: str) -> str:
    words = [f"w{i}" for i in range(10)]
    lines = [" ".join([*words[i % 5 : i % 5 + 4], *JUNK[i % len(JUNK) :][:3]]) for i in range(60)]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return str(path)


def test_a_corpus_of_interpolations_and_junk_trains_and_keeps_its_tokens(train_config, tmp_path):
    corpus = _corpus(tmp_path / "junk.txt", "echo ${HOME} ${oc.env:X} done\n")
    cfg = train_config(
        tmp_path,
        f"data.train_files={corpus}",
        f"data.valid_files={corpus}",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
    )
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["val/ppl"]))
    run = tmp_path / "runs" / "run"
    vocab = (run / "vocab.txt").read_text(encoding="utf-8").split("\n")
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    for token in ("${HOME}", "${oc.env:X}", "${", "$${x}"):
        assert token in vocab and token in ckpt["hyper_parameters"]["vocab"], token


def test_a_corpus_with_nul_bytes_trains_or_is_refused_in_one_line(train_config, tmp_path):
    """NUL bytes may be refused as binary input (one line naming the file); never an OmegaConf
    error."""
    corpus = _corpus(tmp_path / "nul.txt", "a\x00b ${HOME}\x00 ${\n")
    cfg = train_config(
        tmp_path,
        f"data.train_files={corpus}",
        "data.valid_files=null",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
    )
    try:
        train(cfg)
    except UserError as exc:
        assert "nul.txt" in str(exc) and "\n" not in str(exc)
    else:
        vocab = (tmp_path / "runs" / "run" / "vocab.txt").read_text(encoding="utf-8")
        assert "${HOME}" in vocab.split("\n") or "${HOME}\x00" in vocab


@pytest.mark.parametrize("token", ["${HOME}", "${"])
def test_the_module_is_built_without_interpolating_the_vocabulary(train_config, tmp_path, token):
    from elmo_lm.training.run import build_module

    cfg = train_config(tmp_path)
    from elmo_lm.training.config import model_options, run_options

    options = run_options(model_options(cfg.model), cfg, 5, 100)
    module = build_module(cfg, options, ["<S>", "</S>", "<UNK>", token, "x"])
    assert module.hparams["vocab"][3] == token
