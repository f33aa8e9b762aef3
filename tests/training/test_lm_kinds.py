"""Every kind of LM the original trainer trains, end to end: a word-input biLM, a tied one
(embedding = softmax) and a forward LM alone; trained, resumed, evaluated, exported as the
original's ``dump_weights`` files, and loaded back by ``BiLM`` and ``Elmo``."""

from __future__ import annotations

import logging

import h5py
import pytest
import torch

from elmo_lm.commands.evaluate import evaluate
from elmo_lm.commands.export import export
from elmo_lm.embedding.elmo import Elmo
from elmo_lm.errors import TrainingError
from elmo_lm.model.bilm import BiLM
from elmo_lm.training.lm_kinds import load_for_fine_tuning, resolve_softmax
from elmo_lm.training.module import ElmoLM
from elmo_lm.training.run import train

KINDS = {
    "word": ["~model.char_cnn"],
    "tied": ["~model.char_cnn", "+model.share_embedding_softmax=true"],
    "forward": ["+model.bidirectional=false"],
}
SENTENCES = [["the", "cat", "sat"], ["a", "dog"]]


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_trains_resumes_evaluates_exports_and_loads(
    train_config, tmp_path, kind, monkeypatch
):
    read = []  # the keys of every batch the LM's loss read: training, validation, evaluate
    lm_losses = ElmoLM.lm_losses
    monkeypatch.setattr(
        ElmoLM,
        "lm_losses",
        lambda self, batch, *a: read.append(set(batch)) or lm_losses(self, batch, *a),
    )
    quick = ("trainer.limit_train_batches=4", "module.n_negative_samples=8", *KINDS[kind])
    train(train_config(tmp_path, "trainer.max_epochs=1", *quick, name="a"))
    first = tmp_path / "runs" / "a" / "checkpoints" / "last.ckpt"
    train(train_config(tmp_path, "trainer.max_epochs=2", *quick, f"ckpt_path={first}", name="b"))
    ckpt = tmp_path / "runs" / "b" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["global_step"] == 8
    module = ElmoLM.from_checkpoint(ckpt).eval()
    opts = module.options
    assert opts.word_inputs == (kind != "forward") and opts.bidirectional == (kind != "forward")
    if kind == "tied":
        assert module.softmax.weight is module.bilm.word_embedding.weight
        assert "softmax.weight" not in dict(module.named_parameters())

    valid = tmp_path / "valid.txt"
    scores = evaluate(ckpt, valid, batch_size=4, device="cpu")
    assert 1 < scores["ppl"] < len(module.hparams["vocab"])
    assert ("ppl_bwd" in scores) == (kind != "forward")
    if kind == "forward":
        assert scores["ppl"] == pytest.approx(scores["ppl_fwd"])
    # A word-input LM's loaders build no char ids (nor distinct tokens), which it never reads.
    chars = {"fwd_chars", "bwd_chars", "tokens", "token_index"}
    assert len(read) > 8 and all(bool(keys & chars) == (kind == "forward") for keys in read)

    paths = export(ckpt, tmp_path / "export" / "weights.hdf5", softmax=True, card=True)
    with h5py.File(paths["weights"], "r") as f:
        names = set()
        f.visititems(lambda n, o: names.add(n) if isinstance(o, h5py.Dataset) else None)
        if opts.word_inputs:  # the original's embedding_weight_file layout: no padding row
            assert f["embedding"].shape == (len(module.hparams["vocab"]), 8)
            assert not any(n.startswith("CNN") or n == "char_embed" for n in names)
    if kind == "forward":
        assert "rnn/MultiRNNCell/Cell0/LSTMCell/kernel" in names
        assert not any(n.startswith("RNN_") for n in names)
    bilm = BiLM.from_hdf5(paths["options"], paths["weights"], warm_start=False)
    module.bilm.warm_start = False
    with torch.no_grad():
        ours = module.bilm(module.bilm.batch_inputs(SENTENCES))["layers"]
        loaded = bilm(bilm.batch_inputs(SENTENCES))["layers"]
    width = (1 if kind == "forward" else 2) * 8
    assert [layer.shape[-1] for layer in loaded] == [width] * 3
    for a, b in zip(ours, loaded):
        torch.testing.assert_close(a, b)
    elmo = Elmo.from_files(paths["options"], paths["weights"])
    vectors = elmo.embed_sentences(SENTENCES, mode="average")
    assert vectors[0].shape == (3, width)


def test_sample_softmax_and_module_softmax_say_one_thing():
    assert resolve_softmax("auto", 100, 8, sample_softmax=True)
    assert not resolve_softmax("auto", 100, 8, sample_softmax=False)
    assert not resolve_softmax("full", 100, 8, sample_softmax=True)
    with pytest.raises(ValueError, match="sample_softmax: false"):
        resolve_softmax("sampled", 100, 8, sample_softmax=False)


def test_the_options_record_the_softmax_a_run_trained_with(tiny_options):
    vocab = ["<S>", "</S>", "<UNK>"] + [f"w{i}" for i in range(20)]
    options = tiny_options(n_negative_samples_batch=8)
    options.char_cnn = None
    options.sample_softmax = False
    module = ElmoLM(options.to_dict(), vocab)
    assert not module.sampled and module.hparams["options"]["sample_softmax"] is False
    module = ElmoLM({**options.to_dict(), "sample_softmax": True}, vocab)
    assert module.sampled and module.hparams["options"]["sample_softmax"] is True


def test_the_scorer_reads_a_word_input_lm_and_refuses_a_forward_one_in_one_line(tiny_options):
    from elmo_lm.training.scorer import LanguageModel, ScorerError

    vocab = ["<S>", "</S>", "<UNK>", "the", "cat", "sat"]
    options = tiny_options(n_negative_samples_batch=2)
    options.char_cnn = None
    scores = LanguageModel(ElmoLM(options.to_dict(), vocab)).score_sentences([["the", "cat"]])
    assert scores[0].targets == 3 and scores[0].ppl > 1
    options.char_cnn, options.bidirectional = tiny_options().char_cnn, False
    with pytest.raises(ScorerError, match="forward LM alone") as info:
        LanguageModel(ElmoLM(options.to_dict(), vocab))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", ["word", "tied"])
def test_a_word_input_lm_fine_tunes_on_another_vocabulary_its_rows_by_token(
    train_config, tmp_path, kind, caplog
):
    quick = ("trainer.max_steps=2", "module.n_negative_samples=8", *KINDS[kind])
    train(train_config(tmp_path, *quick, name="a"))
    paths = export(tmp_path / "runs" / "a" / "checkpoints" / "last.ckpt", tmp_path / "m" / "w.hdf5")
    source = BiLM.from_hdf5(paths["options"], paths["weights"])
    old = source.word_embedding.tokens
    tokens = ["<S>", "</S>", "<UNK>", "brand-new", *reversed(old[3:-1])]  # old[-1] left out
    torch.manual_seed(0)
    bilm = BiLM(source.options, vocab=tokens)
    fresh = bilm.word_embedding.weight.detach().clone()
    assert load_for_fine_tuning(bilm, source, paths["weights"]) == len(tokens) - 1
    for i, token in enumerate(tokens):
        want = fresh[i] if token == "brand-new" else source.word_embedding.weight[old.index(token)]
        assert torch.equal(bilm.word_embedding.weight[i], want)
    assert torch.equal(bilm.lstm.weights[0], source.lstm.weights[0])

    with caplog.at_level(logging.INFO, logger="elmo_lm.training.run"):
        train(train_config(tmp_path, *quick, f"init_from={paths['weights']}", name="b"))
    n = len(old)  # the same corpus: every row warm
    assert f"word embedding: {n} of {n} rows warm from {paths['weights']}" in caplog.messages
    # A biLM read without its vocabulary (ids only) has no tokens to match rows by.
    ids_only = BiLM(source.options, warm_start=False)  # no vocab: its n_tokens_vocab rows
    with pytest.raises(TrainingError, match="put its vocab.txt") as info:
        load_for_fine_tuning(bilm, ids_only, "w.hdf5")
    assert "\n" not in str(info.value)
