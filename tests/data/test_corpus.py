"""Reading corpora: files and globs, streaming sentences (empty files, blank lines), counting
them and their OOV rate. What counts as text (bad bytes, UTF-16, binary): test_text.py."""

import pytest

from elmo_lm.data.corpus import (
    OOV_WARNING,
    CorpusError,
    CorpusStats,
    corpus_files,
    count_corpus,
    iter_sentences,
    read_sentences,
)
from elmo_lm.data.vocabulary import Vocabulary
from tests.helpers import write_file


def test_corpus_files_sorted_and_errors(tmp_path):
    b = write_file(tmp_path / "b.txt", "x\n")
    a = write_file(tmp_path / "a.txt", "x\n")
    assert corpus_files([str(b), str(tmp_path / "*.txt")]) == [str(a), str(b)]
    assert corpus_files(b) == [str(b)]
    with pytest.raises(CorpusError, match="nope.*no such file"):
        corpus_files([str(a), str(tmp_path / "nope*.txt")])
    with pytest.raises(CorpusError, match="is a directory"):
        corpus_files(tmp_path)
    with pytest.raises(CorpusError, match="no corpus files"):
        corpus_files([])


def test_empty_file_is_an_error_naming_it(tmp_path):
    write_file(tmp_path / "a.txt", "x y\n")
    empty = write_file(tmp_path / "b.txt", "\n  \n")
    with pytest.raises(CorpusError, match=f"{empty}: holds no sentence"):
        count_corpus(str(tmp_path / "*.txt"))


def test_blank_lines_and_crlf_are_skipped(tmp_path):
    path = write_file(tmp_path / "a.txt", b"a b\r\n\r\n\t\nc\r\n")
    assert list(read_sentences(path)) == [["a", "b"], ["c"]]
    assert count_corpus(path) == CorpusStats(2, 3)


def test_count_corpus_counts_sentences_tokens_and_the_oov_rate(tmp_path):
    write_file(tmp_path / "a.txt", "a b zz\n\nb yy\n")
    write_file(tmp_path / "b.txt", "a\n")
    files = str(tmp_path / "*.txt")
    assert count_corpus(files) == CorpusStats(3, 6)
    assert count_corpus(files).n_tokens_with_boundaries == 12
    vocab = Vocabulary(["<S>", "</S>", "<UNK>", "a", "b"])
    assert count_corpus(files, vocab, progress=False) == CorpusStats(3, 6, oov_rate=2 / 6)
    assert count_corpus(files, {"a", "b", "zz", "yy"}).oov_rate == 0  # any container of tokens
    assert count_corpus(files, set()).oov_rate == 1
    assert OOV_WARNING == 0.1


def test_iter_sentences_reads_the_files_in_order(tmp_path):
    a = write_file(tmp_path / "a.txt", "x y\n")
    b = write_file(tmp_path / "b.txt", "z\n\nw\n")
    assert list(iter_sentences([str(b), str(a)])) == [["z"], ["w"], ["x", "y"]]
