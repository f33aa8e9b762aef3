"""What counts as text, for every command that reads a file the user gives (corpora,
vocabularies, elmo-embed's input): binary, compressed and UTF-16 files without a byte-order mark
refused in one line; UTF-16 and UTF-8 with their mark decoded; a trace of bad bytes replaced
and counted in one warning per file."""

from __future__ import annotations

import gzip
import logging

import pytest

from elmo_lm.data.corpus import CorpusError, count_corpus, iter_sentences, read_sentences
from elmo_lm.data.vocabulary import Vocabulary, VocabularyError
from tests.helpers import write_file

TEXT = "the cat sat on the mat .\nthe dog sat on the log .\n" * 40  # 2,000 bytes


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (gzip.compress(TEXT.encode()), r"is gzip-compressed, not text; decompress it first"),
        (TEXT.encode("utf-16-le"), r"looks like UTF-16LE text without a byte-order mark"),
        (TEXT.encode("utf-16-be"), r"looks like UTF-16BE text without a byte-order mark"),
        (b"a b c\n" * 50 + b"\x00\x01\x02\x03" * 4, r"holds NUL bytes \(line 51\)"),
        (
            TEXT.encode() + "caf\xe9 na\xefve \xe0\n".encode("latin-1"),
            r"is not UTF-8 \(3 undecodable bytes",
        ),
    ],
    ids=["gzip", "utf-16-le", "utf-16-be", "binary", "latin-1"],
)
def test_files_that_are_not_text_are_refused_in_one_line_naming_them(tmp_path, content, message):
    path = write_file(tmp_path / "corpus.txt", content)
    with pytest.raises(CorpusError, match=message) as error:
        count_corpus(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)
    # the vocabulary build, and the vocabulary file reader, apply the same rule
    with pytest.raises(CorpusError, match=message):
        Vocabulary.build(path)
    with pytest.raises(VocabularyError, match=message):
        Vocabulary.from_file(path)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_text_with_a_byte_order_mark_is_decoded(tmp_path, encoding, caplog):
    content = "the café sat 🐈 .\n\nné ici .\r\nlast line"
    path = tmp_path / "corpus.txt"
    mark = {"utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    path.write_bytes(mark + content.encode(encoding))
    assert list(read_sentences(path)) == [
        ["the", "café", "sat", "🐈", "."],
        ["né", "ici", "."],
        ["last", "line"],
    ]
    assert _warnings(caplog) == []


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 1 << 16])
def test_utf16_is_read_in_pieces_as_one(tmp_path, monkeypatch, chunk):
    from elmo_lm.data import text

    monkeypatch.setattr(text, "_CHUNK", chunk)  # pieces end inside characters and pairs
    lines = [f"ligne {i} é 🐈 x{'x' * (i % 7)}" for i in range(50)]
    path = write_file(tmp_path / "big.txt", ("\n".join(lines) + "\n").encode("utf-16"))
    assert [" ".join(s) for s in read_sentences(path)] == lines


def test_a_trace_of_bad_bytes_is_replaced_with_one_warning_naming_file_and_count(tmp_path, caplog):
    path = write_file(tmp_path / "a.txt", TEXT.encode() + b"bad \xff byte\nmore \xfe\n")
    with caplog.at_level(logging.WARNING):
        sentences = list(read_sentences(path))
        assert list(iter_sentences([str(path)])) == sentences  # read again: no new warning
    assert sentences[-2:] == [["bad", "\ufffd", "byte"], ["more", "\ufffd"]]
    (warning,) = _warnings(caplog)
    assert warning.startswith(f"{path}: 2 bytes that are not UTF-8 (first on line 81)")
    assert "U+FFFD" in warning and "\n" not in warning


def test_the_warning_is_a_log_line_not_a_python_warning(tmp_path, recwarn):
    path = write_file(tmp_path / "a.txt", TEXT.encode() + b"bad \xff\n")
    list(read_sentences(path))
    assert not [w for w in recwarn if issubclass(w.category, UnicodeWarning)]


def test_the_share_of_bad_bytes_is_of_the_whole_file(tmp_path):
    # 2 bad bytes on the first line: refused in 1,960 bytes (0.102%), kept in 2,000 (0.1%)
    path = write_file(tmp_path / "a.txt", b"\xfe\xfe x\n" + TEXT.encode()[:-45])
    assert path.stat().st_size == 1_960
    with pytest.raises(CorpusError, match=r"2 undecodable bytes.*more than 0\.1%"):
        list(read_sentences(path))
    path.write_bytes(b"\xfe\xfe x\n" + TEXT.encode()[:-5])
    assert path.stat().st_size == 2_000
    assert next(read_sentences(path)) == ["\ufffd\ufffd", "x"]


def test_valid_utf8_reads_as_before(tmp_path):
    content = b"a b\r\n\r\n\t\nc\xe2\x80\xa8d \xc3\xa9\r\nno newline"
    path = write_file(tmp_path / "a.txt", content)
    expected = [line.split() for line in content.decode().split("\n") if line.split()]
    assert list(read_sentences(path)) == expected


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
def test_blocks_of_any_size_read_as_errors_replace_would(tmp_path, monkeypatch, block):
    """However a file falls into blocks (lines longer than a block, bad bytes and multibyte
    characters cut by its end), the lines are those of ``decode(errors="replace")``."""
    import random

    from elmo_lm.data import text

    monkeypatch.setattr(text, "_BLOCK", block)
    monkeypatch.setattr(text, "MAX_BAD_SHARE", 1.0)  # keep every file, to compare the lines
    rng = random.Random(block)
    pieces = [
        b"a",
        b" ",
        b"\n",
        b"\r\n",
        "é".encode(),
        "🐈".encode(),
        b"\xff",
        b"\xe2\x82",
        b"\x80",
    ]
    for i in range(20):
        content = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 60)))
        path = write_file(tmp_path / f"{i}.txt", b"x" + content)  # not a byte-order mark
        expected = (b"x" + content).decode("utf-8", errors="replace").split("\n")
        if expected[-1] == "":
            expected.pop()
        assert list(text.text_lines(path)) == expected, content


def test_the_line_of_the_first_bad_byte_is_exact_in_any_block(tmp_path, monkeypatch, caplog):
    from elmo_lm.data import text

    monkeypatch.setattr(text, "_BLOCK", 100)
    path = write_file(tmp_path / "a.txt", TEXT.encode() * 2 + b"x \xff y\n" + TEXT.encode())
    with caplog.at_level(logging.WARNING):
        assert sum(1 for _ in text.text_lines(path)) == 241
    (warning,) = _warnings(caplog)
    assert "1 byte that is not UTF-8 (first on line 161)" in warning


@pytest.mark.parametrize("vocab_file", [False, True])
def test_training_refuses_a_corpus_that_is_not_text_before_any_step(tmp_path, vocab_file):
    """The data module counts the corpus (building the vocabulary, or with a given one) before
    the model is built: that pass refuses the file."""
    from elmo_lm.data.datamodule import ElmoDataModule

    corpus = write_file(tmp_path / "train.txt", "a b c\n".encode("utf-16-le") * 50)
    vocab = write_file(tmp_path / "vocab.txt", "<S>\n</S>\n<UNK>\na\n")
    data = ElmoDataModule(str(corpus), vocab_file=str(vocab) if vocab_file else None)
    with pytest.raises(CorpusError, match=f"{corpus}: looks like UTF-16LE text without"):
        data.setup()
