"""Vocabulary building, validation and saving; reading corpora (globs, empty files, bad bytes)."""

import pytest

from elmo_lm.data.vocabulary import (
    CorpusError,
    CorpusStats,
    Vocabulary,
    VocabularyError,
    corpus_files,
    count_corpus,
    read_sentences,
)


def write(path, text, mode="w"):
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_build_orders_specials_then_by_count_ties_by_first_occurrence(tmp_path):
    corpus = write(tmp_path / "a.txt", "b a c\n\n  a b a  \nd\n")
    vocab = Vocabulary.build(corpus)
    assert vocab.tokens == ["<S>", "</S>", "<UNK>", "a", "b", "c", "d"]
    assert vocab.counts["a"] == 3
    assert vocab.stats == CorpusStats(n_sentences=3, n_tokens=7)
    assert vocab.stats.n_tokens_with_boundaries == 13


def test_build_min_count_and_max_size(tmp_path):
    corpus = write(tmp_path / "a.txt", "a a a b b c\n")
    assert Vocabulary.build(corpus, min_count=2).tokens[3:] == ["a", "b"]
    assert Vocabulary.build(corpus, max_size=4).tokens[3:] == ["a"]
    with pytest.raises(VocabularyError, match="max_size"):
        Vocabulary.build(corpus, max_size=2)


def test_build_over_a_glob_skips_specials_in_text(tmp_path):
    write(tmp_path / "1.txt", "x <S> y\n")
    write(tmp_path / "2.txt", "y\n")
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
    path = write(tmp_path / "vocab.txt", text)
    with pytest.raises(VocabularyError, match=message) as error:
        Vocabulary.from_file(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_from_file_missing(tmp_path):
    with pytest.raises(VocabularyError, match="no such vocabulary file"):
        Vocabulary.from_file(tmp_path / "nope.txt")


def test_corpus_files_sorted_and_errors(tmp_path):
    b = write(tmp_path / "b.txt", "x\n")
    a = write(tmp_path / "a.txt", "x\n")
    assert corpus_files([str(b), str(tmp_path / "*.txt")]) == [str(a), str(b)]
    assert corpus_files(b) == [str(b)]
    with pytest.raises(CorpusError, match="nope.*no such file"):
        corpus_files([str(a), str(tmp_path / "nope*.txt")])
    with pytest.raises(CorpusError, match="is a directory"):
        corpus_files(tmp_path)
    with pytest.raises(CorpusError, match="no corpus files"):
        corpus_files([])


def test_empty_file_is_an_error_naming_it(tmp_path):
    write(tmp_path / "a.txt", "x y\n")
    empty = write(tmp_path / "b.txt", "\n  \n")
    with pytest.raises(CorpusError, match=f"{empty}: holds no sentence"):
        count_corpus(str(tmp_path / "*.txt"))


def test_bad_bytes_are_replaced_with_one_warning_naming_file_and_line(tmp_path):
    path = write(tmp_path / "a.txt", b"ok line\nbad \xff byte\nmore \xfe\n", mode="wb")
    with pytest.warns(UnicodeWarning, match=r"a\.txt:2: bytes that are not UTF-8") as record:
        sentences = list(read_sentences(path))
    assert len(record) == 1
    assert sentences == [["ok", "line"], ["bad", "\ufffd", "byte"], ["more", "\ufffd"]]


def test_blank_lines_and_crlf_are_skipped(tmp_path):
    path = write(tmp_path / "a.txt", b"a b\r\n\r\n\t\nc\r\n", mode="wb")
    assert list(read_sentences(path)) == [["a", "b"], ["c"]]
    assert count_corpus(path) == CorpusStats(2, 3)
