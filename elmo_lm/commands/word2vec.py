"""Static word vectors of your own corpus, to concatenate with ELMo's: word2vec (skip-gram or
CBOW, Mikolov et al. 2013) trained with gensim (``pip install -e ".[word2vec]"``).

``elmo-word2vec data=FILE_OR_GLOB out=vectors.txt [key=value ...]`` (or ``python word2vec.py``;
``corpus=DIR`` instead of ``data=``: the training files of a prepared corpus, as
``train.py data.corpus=DIR`` reads them) reads the corpus as ``train.py`` does (``elmo_lm.data.corpus``: a path, a glob or a list of them,
sorted, streamed, whitespace tokens, blank lines skipped, text as ``elmo_lm.data.text`` reads it),
once to count the words and once per epoch, and writes the word2vec text format (``binary=true``: the
binary one) that ``WordVectors.from_word2vec``, ``Elmo(word_vectors=...)`` and ``elmo-embed
word_vectors=`` read. The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from elmo_lm.commands.args import REQUIRED, parse_args
from elmo_lm.console import progress_bar
from elmo_lm.data.corpus import Files, PreparedCorpus, corpus_files, iter_sentences
from elmo_lm.errors import UserError, require, user_errors
from elmo_lm.formats.atomic import atomic_path, check_output_file

ARCHITECTURES = {"skipgram": 1, "cbow": 0}  # gensim's sg=

USAGE = (
    "elmo-word2vec (data=FILE_OR_GLOB | corpus=DIR) out=VECTORS.txt [architecture=skipgram|cbow] [dim=100] "
    "[window=5] [min_count=5] [negative=5] [epochs=5] [workers=3] [seed=0] [binary=false] "
    "[progress=true]"
)
DEFAULTS = {
    "data": None,  # the corpus, as data.train_files: a path, a glob or [a,b]
    "corpus": None,  # or a prepared corpus directory (prepare.py): its train_files
    "out": REQUIRED,  # the word2vec file written
    "architecture": "skipgram",
    "dim": 100,
    "window": 5,
    "min_count": 5,
    "negative": 5,
    "epochs": 5,
    "workers": 3,  # 1: the same vectors for the same seed
    "seed": 0,
    "binary": False,  # false: the text format
    "progress": True,  # a progress bar and a last line on stderr
}


class Word2VecError(UserError):
    """A word2vec setting that cannot train (a size below 1, an unknown architecture, a
    ``min_count`` no word reaches)."""


class CorpusSentences:
    """The token lists of corpus files, read again from the start at each ``iter()`` (gensim
    makes one pass to count the words and one per epoch); ``on_sentence`` is called after
    each one."""

    def __init__(self, files: Files, on_sentence=None):
        self.files = corpus_files(files)
        self.on_sentence = on_sentence

    def __iter__(self) -> Iterator[list[str]]:
        for tokens in iter_sentences(self.files):
            yield tokens
            if self.on_sentence is not None:
                self.on_sentence()


@dataclass(frozen=True)
class Word2VecResult:
    path: Path
    n_words: int
    dim: int
    n_sentences: int


def check_architecture_and_sizes(architecture: str, **sizes: int) -> None:
    """Raises ``Word2VecError`` for an unknown architecture or a size below 1."""
    if architecture not in ARCHITECTURES:
        raise Word2VecError(
            f"architecture={architecture}: use {' or '.join(ARCHITECTURES)} (continuous bag of words)"
        )
    for key, value in sizes.items():
        if value < 1:
            raise Word2VecError(f"{key}={value}: must be an integer >= 1")


def train_word2vec(
    data: Files | None,
    out: str | os.PathLike,
    architecture: str = "skipgram",
    dim: int = 100,
    window: int = 5,
    min_count: int = 5,
    negative: int = 5,
    epochs: int = 5,
    workers: int = 3,
    seed: int = 0,
    binary: bool = False,
    progress: bool | None = None,
    corpus: str | os.PathLike | None = None,
) -> Word2VecResult:
    """Trains word2vec on a sentence-per-line corpus and writes the vectors to ``out``.

    Args:
        data: the corpus: a path, a glob, or a list of them (as ``data.train_files``); None
            with ``corpus``.
        out: the word2vec file written (text, or binary with ``binary``); rows by frequency.
        architecture: ``skipgram`` (predict the context from the word; better for rare words)
            or ``cbow`` (predict the word from its context; faster).
        dim: the size of each vector.
        window: context words on each side.
        min_count: words seen fewer times are left out (they get the unknown vector).
        negative: negative samples per target.
        epochs: passes over the corpus.
        workers: training threads; the vectors depend only on ``seed`` with ``workers=1``.
        seed: seeds the initial vectors and the sampling.
        progress: a progress bar over the sentences of all epochs, on stderr; ``None``: when
            stderr is a terminal.
        corpus: instead of ``data``, a prepared corpus directory: its ``train_files``
            (``PreparedCorpus``), the sentences ``train.py data.corpus=`` trains on.

    Raises:
        MissingExtraError: gensim is not installed.
        CorpusError: a file is missing, is not text or holds no sentence (checked as gensim
            counts the words, before training).
        Word2VecError: a bad setting, or no word occurs ``min_count`` times.
        OutputError: ``out`` cannot be written (checked before training).
    """
    if (data is None) == (corpus is None):
        raise Word2VecError(
            "give the corpus one way: data=FILE_OR_GLOB (tokenized text) or corpus=DIR (a "
            "directory written by prepare.py)"
        )
    if corpus is not None:
        data = PreparedCorpus.load(corpus, what="corpus").train_files
    check_architecture_and_sizes(
        architecture,
        dim=dim,
        window=window,
        min_count=min_count,
        negative=negative,
        epochs=epochs,
        workers=workers,
    )
    out = check_output_file(out, "out")
    sentences = CorpusSentences(data)
    models = require("gensim.models", "word2vec", "training word2vec")
    bar = progress_bar(None, "word2vec", "sent", progress)
    sentences.on_sentence = bar.update
    with bar:
        bar.set_postfix_str("counting words")
        model = models.Word2Vec(
            vector_size=dim,
            window=window,
            min_count=min_count,
            sg=ARCHITECTURES[architecture],
            negative=negative,
            epochs=epochs,
            workers=workers,
            seed=seed,
        )
        model.build_vocab(sentences)
        if not model.wv.index_to_key:
            raise Word2VecError(
                f"{sentences.files[0]}{' ...' if len(sentences.files) > 1 else ''}: no word "
                f"occurs min_count={min_count} times; lower min_count or give a larger corpus"
            )
        bar.reset(total=model.corpus_count * epochs)
        bar.set_postfix_str(f"{len(model.wv)} words, {epochs} epochs")
        model.train(sentences, total_examples=model.corpus_count, epochs=epochs)
    with atomic_path(out) as tmp:
        model.wv.save_word2vec_format(str(tmp), binary=binary)
    return Word2VecResult(out, len(model.wv), dim, model.corpus_count)


def main(argv: Sequence[str] | None = None) -> None:
    """``elmo-word2vec key=value ...`` / ``python word2vec.py key=value ...`` (``USAGE``)."""
    with user_errors():
        args = parse_args(argv, DEFAULTS, USAGE)
        result = train_word2vec(**args)
    if args["progress"]:
        print(
            f"wrote {result.n_words} vectors of {result.dim} values to {result.path} "
            f"(read it with word_vectors={result.path})",
            file=sys.stderr,
        )
