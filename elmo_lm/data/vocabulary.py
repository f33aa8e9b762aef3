"""The vocabulary file: one token per line, ``<S>``, ``</S>``, ``<UNK>`` first (ids 0, 1, 2), then
the tokens by descending count in the training data, as the original ELMo tools expect (their
log-uniform negative sampler assumes that order). It is counted from a corpus
(``elmo_lm.data.corpus``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from elmo_lm.data.corpus import CorpusStats, Files, corpus_files, iter_sentences
from elmo_lm.data.text import text_lines
from elmo_lm.errors import UserError
from elmo_lm.formats.atomic import write_text
from elmo_lm.formats.characters import BOS_TOKEN, EOS_TOKEN, UNK_TOKEN

SPECIAL_TOKENS = (BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)


class VocabularyError(UserError):
    """A vocabulary file that cannot be used; the message names the file, the line and the fix."""


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
    """The tokens of a vocabulary file: one per line, each once (the last line may lack its
    newline), read as every command reads text (``elmo_lm.data.text``). The one reader of
    vocabulary files (``Vocabulary.from_file`` and the token cache's rows).

    Raises:
        VocabularyError: one line naming the file, the line and the fix.
    """
    if not os.path.isfile(path):
        raise VocabularyError(
            f"{path}: no such vocabulary file; pass a file with one token per line"
        )
    tokens: list[str] = []
    seen: dict[str, int] = {}
    lines = list(text_lines(path, VocabularyError))  # all read first: is it text at all?
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
