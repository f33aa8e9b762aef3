"""word2vec trained on the corpus train.py reads, written in the format WordVectors reads."""

from __future__ import annotations

import logging
import sys
from collections import Counter

import numpy as np
import pytest

from elmo_lm.commands.word2vec import CorpusSentences, Word2VecError, main, train_word2vec
from elmo_lm.data.corpus import CorpusError, corpus_files, iter_sentences
from elmo_lm.embedding.word_vectors import WordVectors
from elmo_lm.errors import MissingExtraError, OutputError
from elmo_lm.formats.atomic import stale_temporaries

QUICK = {"dim": 8, "window": 2, "min_count": 1, "epochs": 2, "workers": 1, "progress": False}


def _corpus(tmp_path):
    """Two files as train.py reads them: blank lines, repeated spaces, a byte that is not UTF-8
    (a trace: 1 byte in more than 1,000)."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_bytes(
        b"the cat sat on the mat .\n\n  the dog   sat on the log .\ncaf\xe9 au lait .\n"
        + b" " * 1000
        + b"\n"
    )
    (tmp_path / "corpus" / "b.txt").write_text("the cat saw the dog .\n" * 20)
    return str(tmp_path / "corpus" / "*.txt")


def test_reads_the_corpus_as_training_does_and_restarts(tmp_path, caplog):
    data = _corpus(tmp_path)
    counted = []
    sentences = CorpusSentences(data, on_sentence=lambda: counted.append(1))
    with caplog.at_level(logging.WARNING):
        first = list(sentences)
        assert first == list(iter_sentences(corpus_files(data)))  # the reader of train.py
        assert list(sentences) == first  # gensim iterates once per epoch
    assert first[1] == ["the", "dog", "sat", "on", "the", "log", "."]  # blank line skipped
    assert first[2][0] == "caf\ufffd"
    assert len(counted) == 2 * len(first)
    # the byte is counted in one warning, however often the file is read
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "a.txt: 1 byte that is not UTF-8 (first on line 4)" in warning


def test_a_corpus_that_is_not_text_is_refused_before_training(tmp_path):
    import gzip

    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(b"the cat sat .\n" * 100))
    with pytest.raises(CorpusError, match=r"c\.txt\.gz: is gzip-compressed, not text"):
        train_word2vec(tmp_path / "c.txt.gz", tmp_path / "v.txt", **QUICK)
    assert not (tmp_path / "v.txt").exists()


@pytest.mark.parametrize("binary", [False, True])
def test_trains_and_writes_what_word_vectors_read(tmp_path, binary):
    data = _corpus(tmp_path)
    out = tmp_path / ("v.bin" if binary else "v.txt")
    result = train_word2vec(data, out, binary=binary, **QUICK)
    counts = Counter(t for s in iter_sentences(corpus_files(data)) for t in s)
    assert (result.path, result.n_words, result.dim) == (out, len(counts), 8)
    assert result.n_sentences == 23
    vectors = WordVectors.from_word2vec(out)  # the format is guessed
    assert len(vectors) == len(counts) and vectors.dim == 8
    assert set(vectors.index) == set(counts)
    assert vectors.row("the") == 0  # rows by frequency, as word2vec writes them
    assert np.isfinite(vectors.vectors).all() and np.abs(vectors.vectors).sum() > 0
    assert not stale_temporaries(tmp_path)
    if not binary:
        assert out.read_text(encoding="utf-8").splitlines()[0] == f"{len(counts)} 8"


def test_same_seed_same_vectors_and_architectures_differ(tmp_path):
    data = _corpus(tmp_path)
    train_word2vec(data, tmp_path / "a.vec", **QUICK)
    train_word2vec(data, tmp_path / "b.vec", **QUICK)
    train_word2vec(data, tmp_path / "c.vec", architecture="cbow", **QUICK)
    train_word2vec(data, tmp_path / "d.vec", **{**QUICK, "seed": 1})
    a = (tmp_path / "a.vec").read_bytes()
    assert a == (tmp_path / "b.vec").read_bytes()
    assert a != (tmp_path / "c.vec").read_bytes()
    assert a != (tmp_path / "d.vec").read_bytes()


def test_min_count_leaves_rare_words_out(tmp_path):
    data = _corpus(tmp_path)
    result = train_word2vec(data, tmp_path / "v.txt", **{**QUICK, "min_count": 20})
    vectors = WordVectors.from_word2vec(result.path)
    assert set(vectors.index) == {"the", "cat", "saw", "dog", "."}
    assert not vectors.unknown.any() and "mat" not in vectors


def test_command_writes_the_file_with_a_progress_bar(tmp_path, capsys):
    (tmp_path / "c.txt").write_text("a b c d\n" * 50)
    out = tmp_path / "v.txt"
    main([f"data={tmp_path / 'c.txt'}", f"out={out}", "dim=4", "min_count=1", "workers=1"])
    err = capsys.readouterr().err
    assert "word2vec" in err and "250/250" in err  # 50 sentences x 5 epochs
    assert err.strip().splitlines()[-1] == f"wrote 4 vectors of 4 values to {out} " + (
        f"(read it with word_vectors={out})"
    )
    assert WordVectors.from_word2vec(out).dim == 4


def test_bad_settings_are_one_line_errors(tmp_path):
    (tmp_path / "c.txt").write_text("a b c\n")
    data, out = tmp_path / "c.txt", tmp_path / "v.txt"
    with pytest.raises(Word2VecError, match="architecture=glove: use skipgram or cbow"):
        train_word2vec(data, out, architecture="glove")
    with pytest.raises(Word2VecError, match="dim=0: must be an integer >= 1"):
        train_word2vec(data, out, dim=0)
    with pytest.raises(Word2VecError, match="no word occurs min_count=5 times"):
        train_word2vec(data, out, progress=False)
    with pytest.raises(CorpusError, match="no such file"):
        train_word2vec(tmp_path / "missing.txt", out)
    with pytest.raises(OutputError, match="is a directory"):
        train_word2vec(data, tmp_path)
    assert not out.exists()


def test_without_gensim_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    (tmp_path / "c.txt").write_text("a b c\n")
    monkeypatch.setitem(sys.modules, "gensim", None)  # import gensim now fails
    monkeypatch.setitem(sys.modules, "gensim.models", None)
    with pytest.raises(MissingExtraError, match=r'pip install -e "\.\[word2vec\]"'):
        train_word2vec(tmp_path / "c.txt", tmp_path / "v.txt")
    with pytest.raises(SystemExit) as exit_info:
        main([f"data={tmp_path / 'c.txt'}", f"out={tmp_path / 'v.txt'}"])
    assert exit_info.value.code == (
        'error: training word2vec needs gensim, which is not installed; pip install -e ".[word2vec]"'
    )
