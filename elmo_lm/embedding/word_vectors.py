"""Static word vectors (word2vec text or binary format) to concatenate with ELMo's.

Lookup rule, the same everywhere: the token as written first, then ``token.lower()``, then the
unknown-word vector (zeros unless one is given). The file's own spelling is never changed, so a
file holding only ``Paris`` does not match the token ``paris``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from elmo_lm.errors import UserError


class WordVectorsError(UserError):
    """A word-vector file that cannot be read."""


class WordVectors:
    """A table of static word vectors.

    Args:
        words: the vocabulary, one entry per row of ``vectors``; the first of repeated words wins.
        vectors: (n_words, dim) float32.
        unknown: (dim,) vector for words not found; zeros if None.
    """

    def __init__(
        self,
        words: Sequence[str],
        vectors: np.ndarray,
        unknown: np.ndarray | Sequence[float] | None = None,
    ) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise WordVectorsError(
                f"WordVectors: {len(words)} words for a vectors array of shape {vectors.shape}"
            )
        self.vectors = vectors  # (n_words, dim)
        self.index: dict[str, int] = {}
        for row, word in enumerate(words):
            self.index.setdefault(word, row)
        if unknown is None:
            self.unknown = np.zeros(self.dim, dtype=np.float32)
        else:
            self.unknown = np.asarray(unknown, dtype=np.float32)
            if self.unknown.shape != (self.dim,):
                raise WordVectorsError(
                    f"WordVectors: the unknown vector has shape {self.unknown.shape}; "
                    f"give one of {self.dim} values"
                )

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, word: str) -> bool:
        return self.row(word) is not None

    def row(self, token: str) -> int | None:
        """The row of ``token`` (exact match, then lowercase), or None if unknown."""
        row = self.index.get(token)
        if row is None:
            row = self.index.get(token.lower())
        return row

    def __getitem__(self, token: str) -> np.ndarray:
        """The (dim,) vector of one token; the unknown vector if not found."""
        row = self.row(token)
        return self.unknown if row is None else self.vectors[row]

    def embed(self, tokens: Sequence[str]) -> np.ndarray:
        """The (n_tokens, dim) vectors of a tokenized sentence."""
        out = np.empty((len(tokens), self.dim), dtype=np.float32)
        for i, token in enumerate(tokens):
            out[i] = self[token]
        return out

    @classmethod
    def from_word2vec(
        cls,
        path: str | os.PathLike,
        binary: bool | None = None,
        unknown: np.ndarray | Sequence[float] | None = None,
    ) -> WordVectors:
        """Reads a word2vec file.

        Args:
            path: the file. Text format: a header ``n_words dim`` (optional, as in GloVe files),
                then ``word v1 ... v_dim`` per line. Binary format: the header, then per word
                ``word<space>`` and ``dim`` little-endian float32 (a newline after each is allowed).
            binary: the format; guessed from the content if None.
            unknown: the vector of words not in the file; zeros if None.
        """
        path = Path(path)
        if not path.is_file():
            raise WordVectorsError(
                f"{path}: word-vector file not found; pass a word2vec .txt or .bin file"
            )
        data = path.read_bytes()
        if not data.strip():
            raise WordVectorsError(f"{path}: the word-vector file is empty")
        if binary is None:
            binary = _looks_binary(data)
        words, vectors = _read_binary(data, path) if binary else _read_text(data, path)
        return cls(words, vectors, unknown=unknown)


def _header(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _looks_binary(data: bytes) -> bool:
    first, _, rest = data.partition(b"\n")
    header = _header(first)
    if header is None:
        return False  # only text files go without a header
    # a text file's second line is "word v1 .. v_dim" in UTF-8; a binary one holds raw floats
    second = rest.split(b"\n", 1)[0]
    try:
        parts = second.decode("utf-8").split()
        [float(p) for p in parts[1:]]
    except (UnicodeDecodeError, ValueError):
        return True
    return len(parts) != header[1] + 1


def _read_text(data: bytes, path: Path) -> tuple[list[str], np.ndarray]:
    lines = data.decode("utf-8", errors="replace").splitlines()
    start = 1 if _header(lines[0].encode()) is not None else 0
    words, rows = [], []
    dim = None
    for number, line in enumerate(lines[start:], start=start + 1):
        parts = line.rstrip().split(" ")
        if len(parts) < 2:
            if not line.strip():
                continue
            raise WordVectorsError(
                f"{path}:{number}: expected 'word v1 ... v_dim', got {line[:40]!r}"
            )
        dim = dim or len(parts) - 1
        if len(parts) - 1 != dim:
            raise WordVectorsError(
                f"{path}:{number}: {len(parts) - 1} values where earlier lines have {dim}"
            )
        try:
            rows.append(np.array(parts[1:], dtype=np.float32))
        except ValueError:
            raise WordVectorsError(f"{path}:{number}: a value is not a number") from None
        words.append(parts[0])
    if not words:
        raise WordVectorsError(f"{path}: no word vectors in the file")
    return words, np.stack(rows)


def _read_binary(data: bytes, path: Path) -> tuple[list[str], np.ndarray]:
    first, _, _ = data.partition(b"\n")
    header = _header(first)
    if header is None:
        raise WordVectorsError(
            f"{path}: a binary word2vec file starts with 'n_words dim'; pass binary=False for text"
        )
    n_words, dim = header
    vectors = np.empty((n_words, dim), dtype=np.float32)
    words = []
    pos = len(first) + 1
    row_bytes = 4 * dim
    for row in range(n_words):
        while pos < len(data) and data[pos : pos + 1] in (b"\n", b" "):
            pos += 1  # the newline some writers put after each vector
        end = data.find(b" ", pos)
        if end < 0 or end + 1 + row_bytes > len(data):
            raise WordVectorsError(
                f"{path}: the file ends at word {row} of the {n_words} its header announces"
            )
        words.append(data[pos:end].decode("utf-8", errors="replace"))
        vectors[row] = np.frombuffer(data, dtype="<f4", count=dim, offset=end + 1)
        pos = end + 1 + row_bytes
    return words, vectors
