"""Raw text into the commands: elmo-embed and evaluate.py with tokenize=, elmo-word2vec corpus=."""

from __future__ import annotations

import importlib.util
import json

import h5py
import numpy as np
import pytest
import torch

from elmo_lm.commands.embed import embed_file
from elmo_lm.commands.embed import main as embed_main
from elmo_lm.commands.evaluate import evaluate
from elmo_lm.commands.word2vec import CorpusSentences, Word2VecError, train_word2vec
from elmo_lm.data.corpus import PreparedCorpus, corpus_files, iter_sentences
from elmo_lm.data.datamodule import ElmoDataModule
from elmo_lm.embedding.elmo import Elmo
from elmo_lm.formats.tokenize import PUBLISHED, make_tokenizer
from elmo_lm.model.bilm import BiLM
from elmo_lm.training.module import ElmoLM
from tests.helpers import tiny_options_with, write_prepared

RAW = ["The bank raised its rates, again.", "", "I sat by the river's bank!", "Hello, world."]


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    BiLM(tiny_options_with()).eval().to_hdf5(tmp_path / "options.json", tmp_path / "weights.hdf5")
    return tmp_path


@pytest.fixture
def raw_file(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text("\n".join(RAW) + "\n", encoding="utf-8")
    return path


def test_embed_a_raw_file_as_the_model_was_trained(model_dir, raw_file, tmp_path, capsys):
    PUBLISHED.save(model_dir / "tokenizer.json")  # as export.py writes it beside options.json
    out = tmp_path / "out.hdf5"
    embed_main(
        [f"input={raw_file}", f"output={out}", f"model={model_dir}", "mode=top", "progress=false"]
    )
    assert "tokenize=auto: moses (en, NFC) (the model's tokenizer)" in capsys.readouterr().err
    expected = Elmo.from_pretrained(model_dir).embed_texts(RAW, mode="top")
    with h5py.File(out, "r") as f:
        for i, (tokens, vectors) in enumerate(expected):
            np.testing.assert_allclose(f[str(i)][...], vectors, atol=1e-5, rtol=0)
            assert f["tokens"][i].decode() == " ".join(tokens)
        assert json.loads(f.attrs["tokenizer"]) == PUBLISHED.to_dict()
        assert json.loads(f["sentence_to_index"][0])["Hello, world."] == "3"
    assert expected[3].tokens == ["Hello", ",", "world", "."]
    # tokenize=none: whitespace, as before (and no tokens dataset)
    embed_main([f"input={raw_file}", f"output={out}", f"model={model_dir}", "tokenize=none"])
    assert "tokenize=none: whitespace" in capsys.readouterr().err
    with h5py.File(out, "r") as f:
        assert "tokens" not in f and f["3"].shape == (3, 2, 16)  # "Hello," "world."
    with pytest.raises(SystemExit, match="tokenize='nltk': use one of auto, none"):
        embed_main([f"input={raw_file}", f"output={out}", f"model={model_dir}", "tokenize=nltk"])


def test_embed_auto_for_a_model_without_a_tokenizer_splits_on_whitespace(model_dir, raw_file):
    elmo = Elmo.from_pretrained(model_dir)
    out = model_dir / "out.hdf5"
    embed_file(elmo, raw_file, out, mode="average", progress=False)
    with h5py.File(out, "r") as f:
        assert f["0"].shape == (6, 16) and "tokens" not in f


def _checkpoint(tmp_path, tokenizer) -> str:
    """A tiny trained-module checkpoint whose vocabulary holds the Moses tokens of RAW."""
    moses = make_tokenizer(PUBLISHED)
    words = sorted({t for line in RAW for t in moses(line)})
    torch.manual_seed(0)
    module = ElmoLM(
        tiny_options_with().to_dict(),
        ["<S>", "</S>", "<UNK>", *words],
        softmax="full",
        tokenizer=tokenizer,
    )
    path = tmp_path / "model.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return str(path)


def test_evaluate_raw_held_out_text(tmp_path, raw_file, capsys):
    ckpt = _checkpoint(tmp_path, PUBLISHED.to_dict())
    tokenized = tmp_path / "tokenized.txt"
    moses = make_tokenizer(PUBLISHED)
    tokenized.write_text("".join(" ".join(moses(t)) + "\n" for t in RAW if t), encoding="utf-8")
    on_tokens = evaluate(ckpt, str(tokenized), batch_size=2, device="cpu")
    raw = evaluate(ckpt, str(raw_file), batch_size=2, device="cpu", tokenize="auto")
    assert "tokenize=auto: moses" in capsys.readouterr().err
    assert raw == pytest.approx(on_tokens) and on_tokens["oov_rate"] == 0
    assert evaluate(ckpt, str(raw_file), batch_size=2, device="cpu", tokenize="moses") == raw
    as_given = evaluate(ckpt, str(raw_file), batch_size=2, device="cpu")  # tokenize=none
    assert as_given["oov_rate"] > 0 and as_given["tokens"] != raw["tokens"]


def test_word2vec_reads_the_train_files_of_a_prepared_corpus(tmp_path):
    root = write_prepared(tmp_path / "prep")
    train_files = PreparedCorpus.load(root).train_files
    trained_on = ElmoDataModule(corpus=str(root)).train_files  # what train.py reads
    assert list(CorpusSentences(train_files)) == list(iter_sentences(corpus_files(trained_on)))
    out = tmp_path / "v.txt"
    with pytest.raises(Word2VecError, match="give the corpus one way"):
        train_word2vec(None, out)
    with pytest.raises(Word2VecError, match="give the corpus one way"):
        train_word2vec(train_files[0], out, corpus=str(root))
    if importlib.util.find_spec("gensim") is None:
        pytest.skip("gensim is not installed")
    result = train_word2vec(
        None, out, corpus=str(root), dim=4, min_count=1, epochs=1, workers=1, progress=False
    )
    assert result.n_sentences == 200 and result.n_words == 10
