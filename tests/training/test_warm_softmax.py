"""A softmax that travels: ``export.py softmax=true`` writes it beside the weights,
``LanguageModel.from_pretrained`` scores with it, and ``init_from`` starts a new softmax from it
(rows mapped by token)."""

from __future__ import annotations

import logging

import h5py
import pytest
import torch

from elmo_lm.commands.export import export
from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.errors import OutputError
from elmo_lm.formats.softmax_file import (
    SoftmaxFileError,
    softmax_file_for,
    vocab_file_for,
    warm_softmax,
)
from elmo_lm.training.module import ElmoLM
from elmo_lm.training.run import train
from elmo_lm.training.scorer import LanguageModel, ScorerError
from tests.helpers import (
    SCORER_VOCAB,
    compose_train_config,
    one_line_error,
    tiny_options_with,
    write_tiny_checkpoint,
)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("warm") / "tiny.ckpt")


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "weights.hdf5"
    paths = export(ckpt, out, softmax=True)
    assert paths["softmax"] == out.with_name("weights_softmax_weights.hdf5")
    return out.parent


def _datasets(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda n, o: out.update({n: o[...]}) if isinstance(o, h5py.Dataset) else None)
    return out


def test_export_writes_the_softmax_and_leaves_the_pair_as_it_was(ckpt, exported, tmp_path):
    plain = export(ckpt, tmp_path / "weights.hdf5")
    assert "softmax" not in plain and softmax_file_for(plain["weights"]) is None
    assert (exported / "options.json").read_text() == plain["options"].read_text()
    ours, theirs = _datasets(exported / "weights.hdf5"), _datasets(plain["weights"])
    assert ours.keys() == theirs.keys()
    assert all((ours[k] == theirs[k]).all() for k in ours)
    module = ElmoLM.from_checkpoint(ckpt)
    with h5py.File(exported / "weights_softmax_weights.hdf5", "r") as f:
        assert torch.equal(torch.from_numpy(f["softmax/W"][...]), module.softmax.weight.detach())
        assert torch.equal(
            torch.from_numpy(f["softmax/b"][...]), module.softmax.bias[:, 0].detach()
        )
    assert Vocabulary.from_file(exported / "vocab.txt").tokens == SCORER_VOCAB


def test_export_overwrite_rules_cover_the_softmax(ckpt, tmp_path):
    out = tmp_path / "weights.hdf5"
    export(ckpt, out, softmax=True)
    message = one_line_error(OutputError, lambda: export(ckpt, out, softmax=True))
    assert "overwrite=true" in message
    export(ckpt, out, overwrite=True)  # without softmax=true an earlier one is stale: removed
    assert softmax_file_for(out) is None


def test_from_pretrained_scores_as_the_checkpoint(ckpt, exported):
    sentences = [["w1", "w2", "w3"], ["w4", "oov", "w5"]]
    ours = LanguageModel.from_pretrained(exported)
    theirs = LanguageModel.from_checkpoint(ckpt)
    for start in ("zero", "warm"):
        a, b = ours.score_sentences(sentences, start), theirs.score_sentences(sentences, start)
        for x, y in zip(a, b):
            assert x.logprob_fwd == pytest.approx(y.logprob_fwd, abs=1e-5)
            assert x.logprob_bwd == pytest.approx(y.logprob_bwd, abs=1e-5)
    (subs,) = ours.substitutes([["w1", "w2", "w3"]], [1], k=3)
    (same,) = theirs.substitutes([["w1", "w2", "w3"]], [1], k=3)
    assert [w for w, _ in subs.both] == [w for w, _ in same.both]


def test_from_pretrained_without_a_softmax_says_to_export_it(ckpt, tmp_path):
    export(ckpt, tmp_path / "weights.hdf5")
    message = one_line_error(ScorerError, lambda: LanguageModel.from_pretrained(tmp_path))
    assert "softmax=true" in message


def test_init_from_maps_softmax_rows_by_token(exported):
    """What ``train`` does with ``init_from=<exported dir>``: a vocabulary in another order,
    with a token the export lacks."""
    tokens = ["<S>", "</S>", "<UNK>", "w9", "new", *[w for w in SCORER_VOCAB[3:] if w != "w9"]]
    torch.manual_seed(3)
    module = ElmoLM(tiny_options_with().to_dict(), tokens, softmax="full")
    fresh = module.softmax.weight.detach().clone(), module.softmax.bias.detach().clone()
    softmax_file = softmax_file_for(exported / "weights.hdf5")
    source = Vocabulary.from_file(vocab_file_for(softmax_file)).tokens
    assert warm_softmax(module.softmax, tokens, list(source), softmax_file) == len(tokens) - 1
    lm = LanguageModel.from_pretrained(exported).module.softmax
    for i, token in enumerate(tokens):
        if token == "new":
            assert torch.equal(module.softmax.weight[i], fresh[0][i])
            assert torch.equal(module.softmax.bias[i], fresh[1][i])
        else:
            j = SCORER_VOCAB.index(token)
            assert torch.equal(module.softmax.weight[i], lm.weight[j])
            assert torch.equal(module.softmax.bias[i], lm.bias[j])


def test_a_fine_tuning_run_logs_its_warm_rows(exported, tmp_path, caplog):
    cfg = compose_train_config(
        tmp_path, f"init_from={exported}", "trainer.max_steps=1", "trainer.limit_val_batches=1"
    )
    with caplog.at_level(logging.INFO, logger="elmo_lm.training.run"):
        train(cfg)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("softmax:")]
    assert lines == [
        f"softmax: 13 of 13 rows warm from {exported / 'weights_softmax_weights.hdf5'}"
    ]


def _copy_of(exported, tmp_path):
    copy = tmp_path / "model"
    copy.mkdir()
    for path in exported.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    return copy


def test_a_softmax_that_does_not_match_its_vocabulary_is_one_line(exported, tmp_path):
    model = _copy_of(exported, tmp_path)
    with open(model / "vocab.txt", "a") as f:
        f.write("extra\n")  # 14 tokens for 13 rows
    message = one_line_error(SoftmaxFileError, lambda: LanguageModel.from_pretrained(model))
    assert "has shape (13, 8) but needs (14, 8)" in message and "weights_softmax" in message
    cfg = compose_train_config(tmp_path, f"init_from={model}", "trainer.max_steps=1")
    assert "needs (14, 8)" in one_line_error(SoftmaxFileError, lambda: train(cfg))
    (model / "vocab.txt").unlink()
    message = one_line_error(SoftmaxFileError, lambda: LanguageModel.from_pretrained(model))
    assert "no vocab.txt (nor vocab-2016-09-10.txt) beside it" in message
