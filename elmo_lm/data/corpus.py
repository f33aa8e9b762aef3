"""Reading sentence-per-line corpora: resolving their files, streaming their sentences, counting
them.

A corpus is one or many text files (paths or globs; UTF-8, or what else ``elmo_lm.data.text``
reads), one whitespace-tokenized sentence per line, without ``<S>``/``</S>``. Corpora are read
line by line, never whole, so they may be far larger than memory.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass

from tqdm import tqdm

from elmo_lm.console import progress_bar
from elmo_lm.data.text import text_lines
from elmo_lm.errors import UserError

OOV_WARNING = 0.1
"""A warning is given when more than this share of a corpus's tokens is outside the vocabulary
it is read with (training with a given vocabulary file, ``evaluate``): they all become
``<UNK>``."""

Files = str | os.PathLike | Sequence[str | os.PathLike]


class CorpusError(UserError):
    """A corpus file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class CorpusStats:
    """Sizes of a corpus.

    Attributes:
        n_sentences: non-blank lines.
        n_tokens: whitespace tokens, without ``<S>``/``</S>`` (what options.json calls
            ``n_train_tokens``).
        oov_rate: share of the tokens outside a given vocabulary (None: not counted).
    """

    n_sentences: int
    n_tokens: int
    oov_rate: float | None = None

    @property
    def n_tokens_with_boundaries(self) -> int:
        """Tokens of the packed training stream: every sentence adds ``<S>`` and ``</S>``."""
        return self.n_tokens + 2 * self.n_sentences


def corpus_files(files: Files) -> list[str]:
    """The sorted, de-duplicated files named by a path, a glob, or a list of them.

    Raises:
        CorpusError: a path or glob matches no file, or names a directory.
    """
    patterns = [files] if isinstance(files, str | os.PathLike) else list(files)
    if not patterns:
        raise CorpusError("no corpus files given: pass a path, a glob like 'data/*.txt', or a list")
    found: set[str] = set()
    for pattern in patterns:
        pattern = os.path.expanduser(os.fspath(pattern))
        if os.path.isdir(pattern):
            raise CorpusError(
                f"{pattern}: is a directory; give its files as a glob like '{pattern}/*.txt'"
            )
        matches = [pattern] if os.path.isfile(pattern) else sorted(glob.glob(pattern))
        matches = [m for m in matches if os.path.isfile(m)]
        if not matches:
            raise CorpusError(f"{pattern}: no such file (and no file matches it as a glob)")
        found.update(matches)
    return sorted(found)


def read_sentences(path: str | os.PathLike, bar: tqdm | None = None) -> Iterator[list[str]]:
    """Yields the whitespace tokens of each non-blank line of one file, streaming.

    The file is read as every command reads text (``elmo_lm.data.text``: UTF-8, or UTF-16 with
    its byte-order mark; a trace of bad bytes read as U+FFFD with one warning). ``bar``
    (counting bytes) is advanced as the file is read.

    Raises:
        CorpusError: the file is not text, or holds no sentence.
    """
    n_sentences = 0
    for line in text_lines(path, CorpusError, bar):
        tokens = line.split()
        if tokens:
            n_sentences += 1
            yield tokens
    if n_sentences == 0:
        raise CorpusError(f"{path}: holds no sentence (empty or blank lines only); remove it")


def iter_sentences(
    files: Sequence[str], progress: bool | None = False, desc: str = "reading"
) -> Iterator[list[str]]:
    """The sentences of already-resolved ``files`` (see ``corpus_files``), in order; with
    ``progress`` (``None``: when stderr is a terminal), a bar of the bytes read on stderr."""
    total = sum(os.path.getsize(path) for path in files)
    with progress_bar(total, desc, "B", progress) as bar:
        for path in files:
            yield from read_sentences(path, None if bar.disable else bar)


def count_corpus(
    files: Files, vocab: Container[str] | None = None, progress: bool | None = None
) -> CorpusStats:
    """Counts the sentences and tokens of a corpus in one streaming pass.

    Args:
        files: a path, a glob, or a list of them.
        vocab: a ``Vocabulary`` (or any container of tokens): also count the share of tokens it
            does not hold, ``oov_rate`` (compare it with ``OOV_WARNING``).
        progress: a bar of the bytes read on stderr; ``None``: when stderr is a terminal.
    """
    n_sentences = n_tokens = n_oov = 0
    for tokens in iter_sentences(corpus_files(files), progress, "counting the corpus"):
        n_sentences += 1
        n_tokens += len(tokens)
        if vocab is not None:
            n_oov += sum(1 for t in tokens if t not in vocab)
    oov_rate = n_oov / max(n_tokens, 1) if vocab is not None else None
    return CorpusStats(n_sentences, n_tokens, oov_rate)
