"""Static word vectors: word2vec text and binary files written here and read back."""

import struct

import numpy as np
import pytest

from elmo_lm.embedding.word_vectors import WordVectors, WordVectorsError

WORDS = ["the", "Bank", "bank", "river", "naïve"]


def _vectors():
    rng = np.random.default_rng(0)
    return rng.standard_normal((len(WORDS), 6)).astype(np.float32)


def _write_text(path, words, vectors, header=True):
    with open(path, "w", encoding="utf-8") as f:
        if header:
            f.write(f"{len(words)} {vectors.shape[1]}\n")
        for word, vector in zip(words, vectors, strict=True):
            f.write(word + " " + " ".join(repr(float(v)) for v in vector) + "\n")


def _write_binary(path, words, vectors, newline=True):
    with open(path, "wb") as f:
        f.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for word, vector in zip(words, vectors, strict=True):
            f.write(word.encode("utf-8") + b" " + struct.pack(f"<{len(vector)}f", *vector))
            if newline:
                f.write(b"\n")


@pytest.mark.parametrize("fmt", ["text", "text-no-header", "binary", "binary-no-newline"])
def test_read_back(tmp_path, fmt):
    vectors = _vectors()
    path = tmp_path / "vectors"
    if fmt.startswith("text"):
        _write_text(path, WORDS, vectors, header=fmt == "text")
    else:
        _write_binary(path, WORDS, vectors, newline=fmt == "binary")
    wv = WordVectors.from_word2vec(path)  # format guessed from the content
    assert len(wv) == len(WORDS) and wv.dim == 6
    for word, vector in zip(WORDS, vectors, strict=True):
        np.testing.assert_array_equal(wv[word], vector)
    explicit = WordVectors.from_word2vec(path, binary=fmt.startswith("binary"))
    np.testing.assert_array_equal(explicit.vectors, vectors)


def test_case_handling_and_unknown(tmp_path):
    vectors = _vectors()
    path = tmp_path / "v.txt"
    _write_text(path, WORDS, vectors)
    wv = WordVectors.from_word2vec(path)
    np.testing.assert_array_equal(wv["Bank"], vectors[1])  # exact match first
    np.testing.assert_array_equal(wv["bank"], vectors[2])
    np.testing.assert_array_equal(wv["BANK"], vectors[2])  # then lowercase
    np.testing.assert_array_equal(wv["The"], vectors[0])
    np.testing.assert_array_equal(wv["RIVERS"], np.zeros(6))  # then the unknown vector
    assert "River" in wv and "rivers" not in wv
    unk = np.arange(6, dtype=np.float32)
    wv = WordVectors.from_word2vec(path, unknown=unk)
    out = wv.embed(["the", "zzz", "River"])
    np.testing.assert_array_equal(out, np.stack([vectors[0], unk, vectors[3]]))


def test_bad_files(tmp_path):
    with pytest.raises(WordVectorsError, match="not found"):
        WordVectors.from_word2vec(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(WordVectorsError, match="empty"):
        WordVectors.from_word2vec(empty)
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("a 1 2 3\nb 1 2\n")
    with pytest.raises(WordVectorsError, match=r"ragged.txt:2: 2 values"):
        WordVectors.from_word2vec(ragged)
    short = tmp_path / "short.bin"
    _write_binary(short, WORDS, _vectors())
    short.write_bytes(short.read_bytes()[:-20])
    with pytest.raises(WordVectorsError, match="ends at word 4"):
        WordVectors.from_word2vec(short, binary=True)
    with pytest.raises(WordVectorsError, match="unknown vector"):
        WordVectors(["a"], np.zeros((1, 3)), unknown=[1.0])
