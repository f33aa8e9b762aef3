"""elmo-prepare's pipeline on real text of four languages (tests/fixtures/text/): the files,
dedupe, shuffle, shards, splits, vocabulary and the report."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from collections import Counter

import pytest

from elmo_lm.data.corpus import corpus_files, iter_sentences
from elmo_lm.data.prepare import prepare_corpus, split_sizes
from elmo_lm.data.prepare_read import (
    PrepareError,
    file_lines,
    paragraphs,
    read_items,
    split_sentences,
)
from elmo_lm.data.prepare_report import crop_figures, suggested_model
from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.formats.tokenize import PUBLISHED, TokenizerSpec
from tests.helpers import FIXTURES

TEXT = FIXTURES / "text"
LANGS = {
    "en": "en_literature.txt",
    "de": "de_sprichworte.txt",
    "ru": "ru_2001.03.txt",
    "zh": "zh_chinese.txt",
}
QUICK = {"workers": 1, "n_buckets": 3, "progress": False}


def fortunes(name: str) -> list[str]:
    """The fortunes of a fixture without their indented attributions, each as its lines."""
    text = (TEXT / name).read_text(encoding="utf-8")
    return [
        "\n".join(ln for ln in f.splitlines() if ln.strip() and not ln.startswith(("\t", "  ")))
        for f in text.split("\n%\n")
    ]


def as_documents(name: str) -> str:
    return "\n\n".join(fortunes(name)) + "\n"


def as_lines(name: str) -> str:
    return "".join(" ".join(f.split()) + "\n" for f in fortunes(name) if f.strip())


def files_of(out, corpus):
    return {k: [out / f for f in corpus[k]] for k in ("train_files", "valid_files", "test_files")}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("format", ["lines", "documents"])
def test_real_text_of_four_languages(tmp_path, lang, format):
    source = tmp_path / "in.txt"
    source.write_text((as_lines if format == "lines" else as_documents)(LANGS[lang]), "utf-8")
    spec = TokenizerSpec("moses", lang)
    out = tmp_path / "out"
    corpus = prepare_corpus(
        read_items([str(source)], format), out, spec, format, 0.1, 5, 4, **QUICK
    )
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == [
        "corpus.json", "test.txt", "tokenizer.json",
        *[f"train/part-0000{i}.txt" for i in range(4)],
        "valid.txt", "vocab.txt", "vocab_counts.txt",
    ]  # fmt: skip
    assert json.loads((out / "corpus.json").read_text()) == corpus
    assert TokenizerSpec.load(out / "tokenizer.json") == spec
    s = corpus["report"]["sentences"]
    found = files_of(out, corpus)
    n = {k: sum(1 for _ in iter_sentences(corpus_files(v))) for k, v in found.items()}
    assert n == {"train_files": s["train"], "valid_files": s["valid"], "test_files": 5}
    assert s["kept"] == s["read"] - s["duplicates"] - s["dropped_length"] == sum(n.values())
    assert s["valid"] == round(0.1 * s["kept"])
    vocab = Vocabulary.from_file(out / "vocab.txt")
    built = Vocabulary.build(found["train_files"])
    assert vocab.tokens == built.tokens  # exactly what the data module would count
    counts = [ln.split(" ") for ln in (out / "vocab_counts.txt").read_text().splitlines()]
    assert [t for t, _ in counts] == vocab.tokens
    assert {t: int(c) for t, c in counts[3:]} == dict(built.counts)
    if format == "documents" and lang == "zh":
        assert s["read"] > 3 * len(fortunes(LANGS[lang]))  # 。！？ split the running text


def test_dedupe_shuffle_shards_and_seed(tmp_path):
    lines = [f"sentence number {i % 50} ." for i in range(200)]  # 50 distinct, 150 repeats
    run = lambda out, seed, workers: prepare_corpus(  # noqa: E731
        iter(lines), tmp_path / out, TokenizerSpec(), "lines", 5, 0, 7, seed,
        workers=workers, n_buckets=4, progress=False,
    )  # fmt: skip
    corpus = run("a", 0, 1)
    assert corpus["report"]["sentences"] | {} == {
        "read": 200, "dropped_length": 0, "duplicates": 150, "kept": 50,
        "train": 45, "valid": 5, "test": 0,
    }  # fmt: skip
    shards = [(tmp_path / "a" / f).read_text().splitlines() for f in corpus["train_files"]]
    assert [len(s) for s in shards] == [6, 6, 7, 6, 7, 6, 7]  # near-equal, 45 in 7
    valid = (tmp_path / "a/valid.txt").read_text().splitlines()
    assert sorted(sum(shards, []) + valid) == sorted(set(lines))
    assert corpus["test_files"] == [] and (tmp_path / "a/test.txt").read_text() == ""
    assert run("b", 0, 2)["train_files"] == corpus["train_files"]
    for name in corpus["train_files"]:  # the same files for any number of workers
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    run("c", 1, 1)
    assert (tmp_path / "c/valid.txt").read_text() != "\n".join(valid) + "\n"


def test_crop_figure_matches_a_direct_count(tmp_path):
    long_word = "x" * 49  # 49 bytes > 50 - 2: cropped
    wide = "\u00e9" * 24  # 48 bytes: whole
    lines = [f"w{i} {long_word if i % 10 == 0 else wide} end" for i in range(100)]
    corpus = prepare_corpus(iter(lines), tmp_path / "o", TokenizerSpec(), "lines", 0, 0, 1, **QUICK)
    crop = corpus["report"]["crop"]
    tokens = [t for ln in lines for t in ln.split()]
    direct = sum(len(t.encode()) > 48 for t in tokens)
    assert crop["cropped_tokens"] == direct == 10
    assert crop["cropped_share"] == pytest.approx(direct / len(tokens))
    assert crop["max_characters_keeping_99.9%"] == 51
    assert crop_figures(Counter({"ab": 999, "x" * 60: 1}))["max_characters_keeping_99.9%"] == 4


def test_compressed_crlf_bom_utf16_and_long_lines(tmp_path):
    long = " ".join(["word"] * 20_000)  # a line of 100k characters
    body = f"\ufeffHello, world.\r\nSecond line.\r\n{long}\r\n"
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(body.encode("utf-8")))
    (tmp_path / "b.txt.bz2").write_bytes(bz2.compress(body[1:].encode("utf-16")))  # with its BOM
    (tmp_path / "c.txt.xz").write_bytes(
        lzma.compress(b"caf\xe9 ok\n" + b"fine words here .\n" * 2000)
    )
    for name in ("a.txt.gz", "b.txt.bz2"):
        lines = list(file_lines(str(tmp_path / name)))
        assert lines[0] == "Hello, world.\r" and len(lines[2]) == len(long) + 1
    assert list(file_lines(str(tmp_path / "c.txt.xz")))[0] == "caf\ufffd ok"
    corpus = prepare_corpus(
        read_items([str(p) for p in sorted(tmp_path.glob("*.*"))], "lines"),
        tmp_path / "out", PUBLISHED, "lines", 0, 0, 2, **QUICK,
    )  # fmt: skip
    assert corpus["report"]["sentences"]["duplicates"] == 3 + 1999
    vocab = Vocabulary.from_file(tmp_path / "out/vocab.txt")
    assert vocab.tokens[3] == "word" and "Hello" in vocab and "\r" not in "".join(vocab.tokens)


def test_paragraphs_and_splitter():
    assert list(paragraphs(["a b", "c", "", "  ", "d", ""])) == ["a b c", "d"]
    assert split_sentences('Mr. Smith paid $3.50 for it. "Who\'s there?" she asked. It was 1999.') == [
        "Mr. Smith paid $3.50 for it.", "\"Who's there?\" she asked.", "It was 1999.",
    ]  # fmt: skip
    assert split_sentences("今天很好。我们去吧！好的。") == ["今天很好。", "我们去吧！", "好的。"]


def test_bad_inputs_one_line_and_nothing_left(tmp_path):
    (tmp_path / "nul.txt").write_bytes(b"hello\x00world\n")
    (tmp_path / "ok.txt").write_text("one two\n")
    cases = [
        (lambda: prepare_corpus(read_items([str(tmp_path / "nul.txt")], "lines"), tmp_path / "o", PUBLISHED, **QUICK), "holds NUL bytes"),
        (lambda: prepare_corpus(iter(["a b", "c d"]), tmp_path / "o", PUBLISHED, valid=1, test=1, **QUICK), "leaving none to train on"),
        (lambda: prepare_corpus(iter([" "]), tmp_path / "o", PUBLISHED, **QUICK), "no sentence left"),
        (lambda: split_sizes(10, 0.5, 1.5), "test=1.5"),
        (lambda: list(read_items([str(tmp_path / "ok.txt")], "pages")), "format=pages"),
    ]  # fmt: skip
    for call, match in cases:
        with pytest.raises(PrepareError, match=match) as info:
            call()
        assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nul.txt", "ok.txt"]  # no temp left
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("keep")
    with pytest.raises(PrepareError, match="exists and is not empty; .* overwrite=true"):
        prepare_corpus(iter(["a b"] * 3), tmp_path / "o", PUBLISHED, 0, 0, **QUICK)
    prepare_corpus(
        iter(["a b"] * 3), tmp_path / "o", PUBLISHED, valid=0, test=0, overwrite=True, **QUICK
    )
    assert not (tmp_path / "o" / "x").exists() and (tmp_path / "o" / "vocab.txt").exists()


def test_suggested_model_rule():
    sizes = [0, 99_999, 100_000, 4_999_999, 5_000_000, 60_000_000, 800_000_000]
    assert [suggested_model(n) for n in sizes] == [
        "tiny", "tiny", "mini", "mini", "small", "medium", "original",
    ]  # fmt: skip
