"""Vocabulary building (over files and globs), validation and saving."""

import pytest

from elmo_lm.data.corpus import CorpusStats
from elmo_lm.data.vocabulary import Vocabulary, VocabularyError
from tests.helpers import write_file


def test_build_orders_specials_then_by_count_ties_by_first_occurrence(tmp_path):
    corpus = write_file(tmp_path / "a.txt", "b a c\n\n  a b a  \nd\n")
    vocab = Vocabulary.build(corpus)
    assert vocab.tokens == ["<S>", "</S>", "<UNK>", "a", "b", "c", "d"]
    assert vocab.counts["a"] == 3
    assert vocab.stats == CorpusStats(n_sentences=3, n_tokens=7)
    assert vocab.stats.n_tokens_with_boundaries == 13


def test_build_min_count_and_max_size(tmp_path):
    corpus = write_file(tmp_path / "a.txt", "a a a b b c\n")
    assert Vocabulary.build(corpus, min_count=2).tokens[3:] == ["a", "b"]
    assert Vocabulary.build(corpus, max_size=4).tokens[3:] == ["a"]
    with pytest.raises(VocabularyError, match="max_size"):
        Vocabulary.build(corpus, max_size=2)


def test_build_over_a_glob_skips_specials_in_text(tmp_path):
    write_file(tmp_path / "1.txt", "x <S> y\n")
    write_file(tmp_path / "2.txt", "y\n")
    vocab = Vocabulary.build(str(tmp_path / "*.txt"))
    assert vocab.tokens == ["<S>", "</S>", "<UNK>", "y", "x"]


def test_encode_unknown_is_unk(tmp_path):
    vocab = Vocabulary(["<S>", "</S>", "<UNK>", "a"])
    assert vocab.encode(["<S>", "a", "zzz", "</S>"]) == [0, 3, 2, 1]
    assert len(vocab) == 4 and "a" in vocab and "zzz" not in vocab


def test_save_and_from_file_round_trip(tmp_path):
    vocab = Vocabulary(["<S>", "</S>", "<UNK>", "the", "ünïcode"])
    path = tmp_path / "sub" / "vocab.txt"
    vocab.save(path)
    assert path.read_text(encoding="utf-8") == "<S>\n</S>\n<UNK>\nthe\nünïcode\n"
    assert Vocabulary.from_file(path).tokens == vocab.tokens
    assert [p.name for p in path.parent.iterdir()] == ["vocab.txt"]  # no temporary left behind


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<S>\n</S>\na\n", r"<UNK> is missing; the first three lines must be"),
        ("</S>\n<S>\n<UNK>\na\n", r":2: <S> must be line 1"),
        ("<S>\n</S>\n<UNK>\na\na\n", r":5: 'a' repeats line 4; remove the duplicate"),
        ("<S>\n</S>\n<UNK>\n\na\n", r":4: empty line; remove it"),
        ("<S>\n</S>\n<UNK>\na b\n", r":4: 'a b' holds whitespace"),
    ],
)
def test_from_file_errors_name_file_line_and_fix(tmp_path, text, message):
    path = write_file(tmp_path / "vocab.txt", text)
    with pytest.raises(VocabularyError, match=message) as error:
        Vocabulary.from_file(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_from_file_missing(tmp_path):
    with pytest.raises(VocabularyError, match="no such vocabulary file"):
        Vocabulary.from_file(tmp_path / "nope.txt")
