"""Builds a small real-English corpus from the Debian `fortunes` or `wordnet-base` package, fully
offline.

Each fortune (the text between lines holding only ``%``) loses its indented attribution lines
(``-- Author``) and its overstriking, and is dropped when it looks like ASCII art, code or a table
rather than prose: under 70% letters, over 10% code characters, or over 30% of its lines under
half letters. The files ``ascii-art`` and ``translate-me`` (Latin) are skipped whole; ``art`` is
prose about art and stays. The rest is a preset of ``elmo-prepare`` (``elmo_lm.data.prepare``,
docs/PREPARE.md): each fortune is a paragraph of running text, split into sentences by the
project's one splitter, tokenized as the published models were (Moses, English, NFC: ``don't``
-> ``don 't``, case kept), deduplicated (sentences of fewer than two words or over 120 tokens
are dropped), shuffled with a seed and split into train/valid/test, with ``vocab.txt``,
``corpus.json`` and the report. ``train.txt`` is a hard link to ``train/part-00000.txt`` (the
benchmarks read it). The same seed gives the same files.

``--source wordnet`` builds another domain instead, dictionary English (the fine-tuning target
of ``bench/bench_finetune.py``): the glosses of WordNet's nouns, verbs, adjectives and adverbs
(``data.noun`` ..., each synset's gloss after ``| ``), each definition (a gloss's parts before
its examples, split at ``;``) and each quoted example one sentence (an example's attribution,
``"..."- Author``, dropped), through the same preset one sentence a line.

Usage: python scripts/make_real_corpus.py [--source fortunes|wordnet] [--out data/<source>]
       [--seed 0] [--valid-frac 0.05] [--test-frac 0.05]
       [--fortunes-dir /usr/share/games/fortunes] [--wordnet-dir /usr/share/wordnet]
       [--workers 0]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from elmo_lm.console import format_table
from elmo_lm.data import prepare_read
from elmo_lm.data.prepare import prepare_corpus
from elmo_lm.data.prepare_report import report_rows
from elmo_lm.errors import user_errors
from elmo_lm.formats.tokenize import PUBLISHED, make_tokenizer

FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
# Files that are not English prose: pictures, and Latin for translation ("art" is prose).
SKIP_FILES = {"ascii-art", "translate-me"}
MIN_LETTER_RATIO = 0.7  # letters / non-space characters of a prose fortune
MAX_SYMBOL_RATIO = 0.1  # code characters / non-space characters (IRC logs ~0.05; Lisp, C more)
CODE_CHARS = set("{}[]()<>;=*/\\|_#$^~+@")
MAX_ODD_LINES = 0.3  # fraction of a fortune's lines with letter ratio < 0.5 before it is art
MAX_SENTENCE_TOKENS = 120  # longer "sentences" are unpunctuated verse or lists
MIN_WORDS = 2  # sentences with fewer tokens holding a letter or digit are dropped ("--", "1.")

UNICODE_PUNCT = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": " -- "}
)


def read_fortunes(path: Path) -> list[str]:
    """The fortunes of one file: text between lines holding only ``%``, overstriking removed."""
    text = path.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r".\x08", "", text)  # "_\bx" (underline) and "x\bx" (bold) -> "x"
    fortunes, lines = [], []
    for line in text.splitlines():
        if line.strip() == "%":
            fortunes.append("\n".join(lines))
            lines = []
        else:
            lines.append(line)
    fortunes.append("\n".join(lines))
    return [f for f in fortunes if f.strip()]


def _ratio(text: str, keep) -> float:
    """The fraction of the non-space characters of ``text`` for which ``keep`` holds."""
    chars = [c for c in text if not c.isspace()]
    return sum(map(keep, chars)) / len(chars) if chars else 0.0


def fortune_prose(fortune: str) -> str | None:
    """The fortune as one line of prose without its attribution, or None for art, code, tables."""
    # Attributions are indented ("\t\t-- Larry Wall in <...>"); an unindented "--" is a dash.
    lines = [ln for ln in fortune.splitlines() if not re.match(r"\s+--", ln) and ln.strip()]
    if not lines:
        return None
    odd = sum(_ratio(ln, str.isalpha) < 0.5 for ln in lines)
    text = " ".join(lines)
    if (
        _ratio(text, str.isalpha) < MIN_LETTER_RATIO
        or _ratio(text, CODE_CHARS.__contains__) > MAX_SYMBOL_RATIO
        or odd > MAX_ODD_LINES * len(lines)
    ):
        return None
    return " ".join(text.translate(UNICODE_PUNCT).split())


def split_sentences(text: str) -> list[str]:
    """The project's one sentence splitter (``elmo_lm.data.prepare_read.split_sentences``)."""
    return prepare_read.split_sentences(text)


def tokenize(text: str) -> list[str]:
    """The project's one tokenizer as the published models were trained (``PUBLISHED``: Moses,
    English, NFC; ``don't`` -> ``don 't``)."""
    return _tokenizer()(text)


@cache
def _tokenizer():
    return make_tokenizer(PUBLISHED)


def fortune_files(fortunes_dir: Path = FORTUNES_DIR) -> list[Path]:
    """The prose fortune files of ``fortunes_dir`` (not the ``.dat`` indexes, not ``SKIP_FILES``)."""
    files = sorted(
        p
        for p in fortunes_dir.glob("*")
        if p.is_file() and p.suffix not in {".dat", ".u8"} and p.name not in SKIP_FILES
    )
    if not files:
        sys.exit(
            f"error: no fortune files in {fortunes_dir}; install them with `apt-get install fortunes`"
        )
    return files


def fortune_paragraphs(fortunes_dir: Path = FORTUNES_DIR) -> Iterator[str]:
    """Each prose fortune as one paragraph of running text, in file order."""
    for path in fortune_files(fortunes_dir):
        for fortune in read_fortunes(path):
            prose = fortune_prose(fortune)
            if prose is not None:
                yield prose


def corpus_sentences(fortunes_dir: Path = FORTUNES_DIR) -> list[list[str]]:
    """Tokenized, deduplicated prose sentences of every fortune file, in file order (the
    sentences ``main`` hands to ``elmo-prepare``, before its shuffle)."""
    seen, sentences = set(), []
    for prose in fortune_paragraphs(fortunes_dir):
        for sentence in split_sentences(prose):
            tokens = tokenize(sentence)
            key = " ".join(tokens)
            # Keep sentences with words in them, not "--" or a lone number.
            n_words = sum(any(c.isalnum() for c in t) for t in tokens)
            if key in seen or n_words < MIN_WORDS or len(tokens) > MAX_SENTENCE_TOKENS:
                continue
            seen.add(key)
            sentences.append(tokens)
    return sentences


def wordnet_files(wordnet_dir: Path = WORDNET_DIR) -> list[Path]:
    """WordNet's ``data.*`` files of ``wordnet_dir`` (``WORDNET_FILES``, those present)."""
    files = [wordnet_dir / name for name in WORDNET_FILES if (wordnet_dir / name).is_file()]
    if not files:
        sys.exit(
            f"error: no WordNet data files ({', '.join(WORDNET_FILES)}) in {wordnet_dir}; "
            "install them with `apt-get install wordnet-base`"
        )
    return files


def gloss_sentences(gloss: str) -> list[str]:
    """The definitions (the parts before the first quoted example, split at ``;``) and the
    quoted examples of one WordNet gloss, each a sentence of single-spaced text."""
    definitions, _, _ = gloss.partition('"')
    parts = [*definitions.split(";"), *re.findall(r'"([^"]*)"', gloss)]
    return [" ".join(p.split()) for p in parts if any(c.isalpha() for c in p)]


def wordnet_lines(wordnet_dir: Path = WORDNET_DIR) -> Iterator[str]:
    """The sentences of every synset's gloss (``gloss_sentences``), in file order; the license
    lines at the top of each file (indented) are skipped."""
    for path in wordnet_files(wordnet_dir):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(" ") or " | " not in line:
                    continue
                yield from gloss_sentences(line.split(" | ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("fortunes", "wordnet"), default="fortunes")
    parser.add_argument("--out", type=Path, default=None, help="default data/<source>")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--valid-frac", type=float, default=0.05)
    parser.add_argument("--test-frac", type=float, default=0.05)
    parser.add_argument("--fortunes-dir", type=Path, default=FORTUNES_DIR)
    parser.add_argument("--wordnet-dir", type=Path, default=WORDNET_DIR)
    parser.add_argument("--workers", type=int, default=0, help="0: every core")
    args = parser.parse_args()
    if not (0 <= args.valid_frac < 1 and 0 <= args.test_frac < 1):
        sys.exit("error: --valid-frac and --test-frac must be >= 0 and below 1")
    args.out = args.out or Path("data") / args.source
    if args.source == "wordnet":
        files = wordnet_files(args.wordnet_dir)  # exits with the fix when there are none
        items, kind = wordnet_lines(args.wordnet_dir), "lines"
    else:
        files = fortune_files(args.fortunes_dir)  # exits with the fix when there are none
        items, kind = fortune_paragraphs(args.fortunes_dir), "documents"
    with user_errors():
        corpus = prepare_corpus(
            items,
            args.out,
            PUBLISHED,
            format=kind,
            valid=args.valid_frac,
            test=args.test_frac,
            shards=1,
            seed=args.seed,
            workers=args.workers or None,
            n_buckets=4,
            overwrite=True,
            min_words=MIN_WORDS,
            max_tokens=MAX_SENTENCE_TOKENS,
            sources=[str(p) for p in files],
        )
    # train.txt beside valid.txt and test.txt, as the benchmarks read it (the same file)
    os.link(args.out / corpus["train_files"][0], args.out / "train.txt")
    print(format_table(report_rows(corpus["report"])))


if __name__ == "__main__":
    main()
