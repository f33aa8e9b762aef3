"""The vocabulary file, and reading the sentence-per-line corpora it is counted from.

A vocabulary file holds one token per line: ``<S>``, ``</S>``, ``<UNK>`` first (ids 0, 1, 2), then
the tokens by descending count in the training data, as the original ELMo tools expect (their
log-uniform negative sampler assumes that order). A corpus is one or many UTF-8 files (paths or
globs), one whitespace-tokenized sentence per line, without ``<S>``/``</S>``. Corpora are read
line by line, never whole, so they may be far larger than memory.
"""

from __future__ import annotations

import glob
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from elmo_lm.console import progress_bar
from elmo_lm.errors import UserError
from elmo_lm.formats.atomic import write_text
from elmo_lm.formats.characters import BOS_TOKEN, EOS_TOKEN, UNK_TOKEN

SPECIAL_TOKENS = (BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)

_REPORT_BYTES = 1 << 20  # a progress bar is advanced once per MiB read, not once per line

Files = str | os.PathLike | Sequence[str | os.PathLike]


class VocabularyError(UserError):
    """A vocabulary file that cannot be used; the message names the file, the line and the fix."""


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

    Bytes that are not UTF-8 become U+FFFD, with one warning per file naming the first bad line.
    ``bar`` (counting bytes) is advanced as the file is read.

    Raises:
        CorpusError: the file holds no sentence.
    """
    warned = False
    n_sentences = unreported = 0
    with open(path, "rb") as f:
        for line_number, raw in enumerate(f, start=1):
            if bar is not None:
                unreported += len(raw)
                if unreported >= _REPORT_BYTES:
                    bar.update(unreported)
                    unreported = 0
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw.decode("utf-8", errors="replace")
                if not warned:
                    warnings.warn(
                        f"{path}:{line_number}: bytes that are not UTF-8 were replaced by U+FFFD "
                        "(further bad lines in this file are replaced silently); "
                        "re-encode the file as UTF-8 to silence this",
                        UnicodeWarning,
                        stacklevel=2,
                    )
                    warned = True
            tokens = line.split()
            if tokens:
                n_sentences += 1
                yield tokens
    if bar is not None:
        bar.update(unreported)
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
    files: Files, vocab: Vocabulary | None = None, progress: bool | None = None
) -> CorpusStats:
    """Counts the sentences and tokens of a corpus in one streaming pass, and with ``vocab``,
    the share of tokens it does not hold (``oov_rate``); a progress bar on stderr with
    ``progress`` (``None``: when stderr is a terminal)."""
    n_sentences = n_tokens = n_oov = 0
    for tokens in iter_sentences(corpus_files(files), progress, "counting the corpus"):
        n_sentences += 1
        n_tokens += len(tokens)
        if vocab is not None:
            n_oov += sum(1 for t in tokens if t not in vocab)
    oov_rate = n_oov / max(n_tokens, 1) if vocab is not None else None
    return CorpusStats(n_sentences, n_tokens, oov_rate)


class Vocabulary:
    """Tokens and their ids; ids 0, 1, 2 are ``<S>``, ``</S>``, ``<UNK>``.

    Attributes:
        tokens: the tokens in id order.
        counts: token counts in the corpus it was built from (empty when read from a file).
        stats: sizes of the corpus it was built from (None when read from a file).
    """

    def __init__(
        self,
        tokens: Iterable[str],
        counts: Counter | None = None,
        stats: CorpusStats | None = None,
    ):
        self.tokens = list(tokens)
        if tuple(self.tokens[:3]) != SPECIAL_TOKENS:
            raise VocabularyError(f"a vocabulary must start with {', '.join(SPECIAL_TOKENS)}")
        self._ids = {token: i for i, token in enumerate(self.tokens)}
        if len(self._ids) != len(self.tokens):
            raise VocabularyError("a vocabulary must not hold a token twice")
        self.counts = counts if counts is not None else Counter()
        self.stats = stats
        self.unk_id = self._ids[UNK_TOKEN]

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._ids

    def token_to_id(self, token: str) -> int:
        """The id of ``token``; the ``<UNK>`` id when it is not in the vocabulary."""
        return self._ids.get(token, self.unk_id)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; unknown tokens get the ``<UNK>`` id."""
        get, unk = self._ids.get, self.unk_id
        return [get(t, unk) for t in tokens]

    @classmethod
    def build(
        cls,
        files: Files,
        min_count: int = 1,
        max_size: int | None = None,
        progress: bool | None = None,
    ) -> Vocabulary:
        """Counts the tokens of a corpus, streaming, and keeps the frequent ones.

        Args:
            files: a path, a glob, or a list of them; one tokenized sentence per line.
            min_count: keep tokens seen at least this often.
            max_size: keep at most this many tokens, the three special tokens included.
            progress: a bar of the bytes read on stderr; ``None``: when stderr is a terminal.

        Returns:
            The specials, then tokens by descending count, ties by first occurrence; ``.counts``
            and ``.stats`` describe the corpus.
        """
        if max_size is not None and max_size < len(SPECIAL_TOKENS):
            raise VocabularyError(f"vocab max_size={max_size}: must be at least 3 (the specials)")
        counts: Counter[str] = Counter()
        n_sentences = 0
        for tokens in iter_sentences(corpus_files(files), progress, "building the vocabulary"):
            n_sentences += 1
            counts.update(tokens)
        stats = CorpusStats(n_sentences, sum(counts.values()))
        # Counter keeps first-occurrence order and sorted() is stable: ties stay in that order.
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_count and t not in SPECIAL_TOKENS),
            key=lambda t: -counts[t],
        )
        if max_size is not None:
            ranked = ranked[: max_size - len(SPECIAL_TOKENS)]
        return cls([*SPECIAL_TOKENS, *ranked], counts=counts, stats=stats)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Vocabulary:
        """Reads and validates a vocabulary file (``read_tokens``, the specials first).

        Raises:
            VocabularyError: one line naming the file, the line and the fix.
        """
        tokens = read_tokens(path)
        seen = {token: number for number, token in enumerate(tokens, start=1)}
        for i, special in enumerate(SPECIAL_TOKENS):
            if special not in seen:
                raise VocabularyError(
                    f"{path}: {special} is missing; the first three lines must be <S>, </S>, <UNK>"
                )
            if seen[special] != i + 1:
                raise VocabularyError(
                    f"{path}:{seen[special]}: {special} must be line {i + 1}; "
                    "the first three lines must be <S>, </S>, <UNK>"
                )
        return cls(tokens)

    def save(self, path: str | os.PathLike) -> None:
        """Writes one token per line, atomically (``elmo_lm.formats.atomic``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, "".join(f"{token}\n" for token in self.tokens))


def read_tokens(path: str | os.PathLike) -> list[str]:
    """The tokens of a vocabulary file: one per line, in UTF-8, each once (the last line may
    lack its newline). The one reader of vocabulary files (``Vocabulary.from_file`` and the
    token cache's rows).

    Raises:
        VocabularyError: one line naming the file, the line and the fix.
    """
    if not os.path.isfile(path):
        raise VocabularyError(
            f"{path}: no such vocabulary file; pass a file with one token per line"
        )
    tokens: list[str] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = list(f)
        except UnicodeDecodeError as e:
            raise VocabularyError(f"{path}: is not UTF-8 ({e.reason}); re-encode it") from None
    if not lines:
        raise VocabularyError(f"{path}: the vocabulary file is empty; one token per line")
    for line_number, line in enumerate(lines, start=1):
        token = line.rstrip("\r\n")
        where = f"{path}:{line_number}"
        if not token.strip():
            raise VocabularyError(f"{where}: empty line; remove it (one token per line)")
        if token != token.strip() or len(token.split()) != 1:
            raise VocabularyError(
                f"{where}: {token!r} holds whitespace; one token per line, no spaces"
            )
        if token in seen:
            raise VocabularyError(
                f"{where}: {token!r} repeats line {seen[token]}; remove the duplicate"
            )
        seen[token] = line_number
        tokens.append(token)
    return tokens
