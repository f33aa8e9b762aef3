"""Elmo.embed_texts: raw strings cut as the model's training text was, then embedded."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from elmo_lm.embedding.elmo import (
    AS_GIVEN,
    Elmo,
    ElmoError,
    choose_tokenizer,
    recorded_tokenizer,
)
from elmo_lm.formats.tokenize import PUBLISHED, TokenizerSpec, make_tokenizer
from elmo_lm.training.module import ElmoLM
from tests.helpers import tiny_options_with

TEXTS = ["Hello, world.", "I don't like the bank's rates!", "", "well-known (sort of)"]


def test_embed_texts_is_embed_sentences_of_the_moses_tokens(bilm):
    elmo = Elmo(bilm, tokenizer=PUBLISHED)
    moses = make_tokenizer(PUBLISHED)
    tokens = [moses(t) for t in TEXTS]
    assert tokens[0] == ["Hello", ",", "world", "."] and tokens[2] == []
    for mode in ("average", "all"):
        got = elmo.embed_texts(TEXTS, mode=mode, batch_size=2)
        expected = elmo.embed_sentences(tokens, mode=mode)
        assert [g.tokens for g in got] == tokens
        for g, e in zip(got, expected, strict=True):
            assert g.vectors.shape == e.shape
            np.testing.assert_allclose(g.vectors, e, atol=1e-6, rtol=0)
    got_tokens, got_vectors = elmo.embed_texts(["Hello, world."], tokenize="none")[0]
    assert got_tokens == ["Hello,", "world."] and got_vectors.shape == (2, 16)


def test_auto_without_a_recorded_tokenizer_splits_on_whitespace_and_says_so_once(bilm, caplog):
    elmo = Elmo(bilm)
    with caplog.at_level(logging.WARNING, logger="elmo_lm.embedding.elmo"):
        first = elmo.embed_texts(["Hello, world."])
        elmo.embed_texts(["Hello, world."])
    assert first[0].tokens == ["Hello,", "world."]
    said = [r.getMessage() for r in caplog.records if "whitespace" in r.getMessage()]
    assert len(said) == 1 and "tokenize='moses'" in said[0]
    assert elmo.embed_texts(["Hello, world."], tokenize="moses")[0].tokens[-1] == "."
    with pytest.raises(ElmoError, match="list of strings"):
        elmo.embed_texts([["Hello", "world"]])
    with pytest.raises(ElmoError, match="tokenize='spacy': use one of auto, none"):
        elmo.embed_texts(["a"], tokenize="spacy")


def test_choose_tokenizer():
    german = TokenizerSpec("moses", "de")
    assert choose_tokenizer("auto", german)[0] == german
    assert choose_tokenizer("auto", None)[0] == AS_GIVEN
    assert choose_tokenizer("none", german)[0] == AS_GIVEN
    assert choose_tokenizer("moses", german)[0] == german  # its language kept
    assert choose_tokenizer("moses", None)[0] == TokenizerSpec("moses")


def test_the_model_files_say_which_tokenizer(tmp_path, bilm):
    options, weights = tmp_path / "options.json", tmp_path / "weights.hdf5"
    bilm.to_hdf5(options, weights)
    assert Elmo.from_files(options, weights).tokenizer is None
    assert Elmo.from_pretrained(tmp_path).tokenizer is None
    TokenizerSpec("moses", "fr").save(tmp_path / "tokenizer.json")
    assert Elmo.from_pretrained(tmp_path).tokenizer == TokenizerSpec("moses", "fr")
    (tmp_path / "tokenizer.json").write_text("{broken")
    with pytest.raises(ElmoError, match="tokenizer.json: not a valid JSON"):
        Elmo.from_files(options, weights)
    # the published models' options files: Moses, as their corpus was cut
    published = tmp_path / "pub" / "elmo_2x1024_128_2048cnn_1xhighway_options.json"
    published.parent.mkdir()
    published.write_text(options.read_text())
    assert recorded_tokenizer(published) == PUBLISHED


def test_a_checkpoint_gives_its_recorded_tokenizer_and_old_ones_none(tmp_path):
    torch.manual_seed(0)
    vocab = ["<S>", "</S>", "<UNK>", "hello", ",", "world", "."]
    options = tiny_options_with().to_dict()
    for name, tokenizer in (("new", PUBLISHED.to_dict()), ("old", None)):
        module = ElmoLM(options, vocab, softmax="full", tokenizer=tokenizer)
        hparams = dict(module.hparams)
        if tokenizer is None:
            hparams.pop("tokenizer")  # written before the tokenizer was recorded
        path = tmp_path / f"{name}.ckpt"
        torch.save({"hyper_parameters": hparams, "state_dict": module.state_dict()}, path)
        elmo = Elmo.from_checkpoint(path)
        assert elmo.tokenizer == (PUBLISHED if tokenizer else None)
        assert ElmoLM.from_checkpoint(path).hparams["tokenizer"] == tokenizer
    json.dumps(dict(ElmoLM(options, vocab, softmax="full", tokenizer=PUBLISHED.to_dict()).hparams))
