"""Reading sentence-per-line corpora: resolving their files, streaming their sentences, counting
them.

A corpus is one or many text files (paths or globs; UTF-8, or what else ``elmo_lm.data.text``
reads), one whitespace-tokenized sentence per line, without ``<S>``/``</S>``. Corpora are read
line by line, never whole, so they may be far larger than memory. A prepared corpus
(``python prepare.py``) is a directory whose ``corpus.json`` names its files, its vocabulary
and the tokenizer that cut its text (``PreparedCorpus``).
"""

from __future__ import annotations

import glob
import itertools
import json
import os
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from elmo_lm.console import progress_bar
from elmo_lm.data.text import text_lines
from elmo_lm.errors import UserError
from elmo_lm.formats.tokenize import TOKENIZER_FILE, TokenizerSpec, attached_punctuation

OOV_WARNING = 0.1
"""A warning is given when more than this share of a corpus's tokens is outside the vocabulary
it is read with (training with a given vocabulary file, ``evaluate``): they all become
``<UNK>``."""

UNTOKENIZED_SHARE = 0.03
"""A training corpus whose sampled tokens have punctuation attached (``world.``, ``Hello,``)
more often than this looks untokenized, and is warned about. Moses-tokenized English measures
about 0.1% (abbreviations such as ``Mr.``), raw English prose 11-14% (a period per sentence, a
comma every 15 words or so): 3% is 30 times the first and a quarter of the second, so that
lightly punctuated raw text (headlines, chat) is caught too."""

UNTOKENIZED_SAMPLE_LINES = 5000
"""Lines read from the start of the training files to measure ``attached_punctuation``."""

CORPUS_FILE = "corpus.json"
"""What ``prepare.py`` writes in a prepared corpus directory (``PreparedCorpus``)."""

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


def untokenized_share(files: Files, n_lines: int = UNTOKENIZED_SAMPLE_LINES) -> float:
    """``attached_punctuation`` of the tokens of the first ``n_lines`` sentences of ``files``:
    near 0 for tokenized text, above ``UNTOKENIZED_SHARE`` for raw text."""
    sentences = itertools.islice(iter_sentences(corpus_files(files)), n_lines)
    return attached_punctuation(t for tokens in sentences for t in tokens)


PREPARE = "python prepare.py input=<file> out={dir} tokenizer=moses"
"""The command that writes a prepared corpus, for the messages that send the user to it."""


@dataclass(frozen=True)
class PreparedCorpus:
    """A directory written by ``prepare.py``: its ``corpus.json``, with paths made absolute.

    Attributes:
        directory: the corpus directory.
        train_files: the training files (``corpus.json``'s ``train_files``).
        valid_files: held-out files (empty: none).
        test_files: test files (empty: none).
        vocab_file: the vocabulary file, or None (built from the training files).
        counts_file: the token counts, or None.
        tokenizer: the tokenizer that cut the text (``corpus.json``'s ``tokenizer``, else the
            directory's ``tokenizer.json``), or None where neither says.
        report: what ``prepare.py`` reported of the text.
    """

    directory: Path
    train_files: list[str]
    valid_files: list[str] = field(default_factory=list)
    test_files: list[str] = field(default_factory=list)
    vocab_file: str | None = None
    counts_file: str | None = None
    tokenizer: TokenizerSpec | None = None
    report: dict = field(default_factory=dict)

    @classmethod
    def load(cls, directory: str | os.PathLike, what: str = "data.corpus") -> PreparedCorpus:
        """Reads ``<directory>/corpus.json`` (a path to the ``corpus.json`` itself also does).

        Args:
            directory: the prepared corpus directory.
            what: how the user gave it, to start messages with (``data.corpus``, ``corpus``).

        Raises:
            CorpusError: one line naming the directory or file and the fix (not a directory,
                no ``corpus.json``, not valid JSON, a key missing or of the wrong kind, a
                listed file that does not exist).
        """
        path = Path(os.path.expanduser(os.fspath(directory)))
        if path.is_file() and path.name == CORPUS_FILE:
            path = path.parent
        redo = "write it again with " + PREPARE.format(dir=path)
        if not path.exists():
            raise CorpusError(
                f"{what}={directory}: no such directory; pass the directory that "
                f"{PREPARE.format(dir='<dir>')} wrote"
            )
        if not path.is_dir():
            raise CorpusError(
                f"{what}={directory}: a file, not a prepared corpus directory; pass it as "
                f"data.train_files={directory}, or prepare it: {PREPARE.format(dir='<dir>')}"
            )
        file = path / CORPUS_FILE
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CorpusError(
                f"{file}: not found, so {path} is not a prepared corpus; {redo}"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorpusError(f"{file}: not valid JSON ({exc}); {redo}") from None
        if not isinstance(data, dict):
            raise CorpusError(f"{file}: must hold a JSON object; {redo}")

        def files(key: str, required: bool = False) -> list[str]:
            value = data.get(key, [] if not required else None)
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise CorpusError(
                    f"{file}: {key} must be a list of paths relative to {path}; {redo}"
                )
            if required and not value:
                raise CorpusError(f"{file}: {key} lists no file; {redo}")
            found = [os.fspath(path / v) for v in value]
            for f in found:
                if not os.path.isfile(f):
                    raise CorpusError(f"{file}: {key} lists {f}, which does not exist; {redo}")
            return found

        def one_file(key: str) -> str | None:
            if data.get(key) is None:
                return None
            if not isinstance(data[key], str):
                raise CorpusError(f"{file}: {key} must be a path relative to {path}; {redo}")
            return files(key)[0]

        spec = data.get("tokenizer")
        try:
            if spec is not None:
                tokenizer = TokenizerSpec.from_dict(spec, source=f"{file}: tokenizer")
            elif (path / TOKENIZER_FILE).is_file():
                tokenizer = TokenizerSpec.load(path / TOKENIZER_FILE)
            else:
                tokenizer = None
        except ValueError as exc:
            raise CorpusError(f"{exc}; {redo}") from None
        report = data.get("report") or {}
        return cls(
            path,
            files("train_files", required=True),
            files("valid_files"),
            files("test_files"),
            one_file("vocab_file"),
            one_file("counts_file"),
            tokenizer,
            report if isinstance(report, dict) else {},
        )
