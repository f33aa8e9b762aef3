"""A cache of context-independent token embeddings for a fixed vocabulary.

The file is the original tools' token-embedding file (``dump_token_embeddings``): one HDF5
dataset ``embedding`` of shape (n_vocab, projection_dim), row t for line t of the vocabulary
file. With a cache, known tokens skip the character CNN; the others still go through it.

Entries are keyed by the tokens' character ids, not their text: tokens longer than
``max_characters_per_token - 2`` bytes that share their first bytes have the same ids and so
the same embedding either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from elmo_lm.console import progress_bar
from elmo_lm.data.vocabulary import read_tokens
from elmo_lm.errors import UserError
from elmo_lm.formats.atomic import atomic_path
from elmo_lm.formats.characters import token_to_char_ids
from elmo_lm.model.distinct import row_keys


class TokenCacheError(UserError):
    """A vocabulary or token-embedding file that cannot be used."""


class TokenCache(nn.Module):
    """Token embeddings looked up by character ids.

    Args:
        tokens: the vocabulary, row t of ``embeddings`` belonging to ``tokens[t]``.
        embeddings: (n_vocab, projection_dim).
        max_chars: the biLM's ``max_characters_per_token``.
    """

    def __init__(
        self, tokens: Sequence[str], embeddings: torch.Tensor, max_chars: int = 50
    ) -> None:
        super().__init__()
        embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(tokens):
            raise TokenCacheError(
                f"token cache: {len(tokens)} vocabulary tokens for embeddings of shape "
                f"{tuple(embeddings.shape)}; use the vocabulary file the cache was written from"
            )
        self.tokens = list(tokens)
        self.max_chars = max_chars
        char_ids = torch.tensor([token_to_char_ids(t, max_chars) for t in self.tokens])  # (V, C)
        # The rows' hash keys, sorted for searchsorted; a hit is confirmed against the stored
        # ids, so collisions cannot mislead.
        keys, order = row_keys(char_ids).sort()
        self.register_buffer("keys", keys, persistent=False)  # (V,) sorted
        self.register_buffer("order", order, persistent=False)  # (V,) row of each sorted key
        self.register_buffer("char_ids", char_ids, persistent=False)  # (V, C)
        self.register_buffer("embeddings", embeddings, persistent=False)  # (V, P)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def rows(self, char_ids: torch.Tensor) -> torch.Tensor:
        """Cache rows of (N, C) char ids: (N,) long, -1 where the token is not cached."""
        keys = row_keys(char_ids)  # (N,)
        pos = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        rows = self.order[pos]
        hit = (self.keys[pos] == keys) & (self.char_ids[rows] == char_ids).all(-1)
        return torch.where(hit, rows, torch.full_like(rows, -1))

    def encode(
        self, char_ids: torch.Tensor, encoder: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """Token embeddings of (..., C) char ids: cached rows, ``encoder`` (the char CNN) for the rest.

        All-zero rows (batch padding) count as uncached and are left to ``encoder``.
        """
        lead = char_ids.shape[:-1]
        flat = char_ids.reshape(-1, char_ids.shape[-1])  # (N, C)
        rows = self.rows(flat)
        out = self.embeddings.new_empty(flat.shape[0], self.dim)  # (N, P)
        hit = rows >= 0
        out[hit] = self.embeddings[rows[hit]]
        if not bool(hit.all()):
            miss = ~hit
            out[miss] = encoder(flat[miss]).to(out.dtype)
        return out.reshape(*lead, self.dim)

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        bilm: nn.Module,
        vocab_file: str | os.PathLike,
        batch_size: int = 512,
        progress: bool | None = None,
    ) -> TokenCache:
        """Computes the embedding of every vocabulary token with ``bilm.embed_tokens``; a
        progress bar on stderr with ``progress`` (``None``: when stderr is a terminal)."""
        tokens = read_tokens(vocab_file)
        max_chars = bilm.options.char_cnn.max_characters_per_token
        device = next(bilm.parameters()).device
        was_training = bilm.training
        bilm.eval()
        pieces = []
        with progress_bar(len(tokens), "token cache", "tok", progress) as bar:
            for start in range(0, len(tokens), batch_size):
                batch = tokens[start : start + batch_size]
                ids = torch.tensor([token_to_char_ids(t, max_chars) for t in batch])
                pieces.append(bilm.embed_tokens(ids.to(device)).float().cpu())  # (batch, P)
                bar.update(len(batch))
        bilm.train(was_training)
        return cls(tokens, torch.cat(pieces), max_chars)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the original tools' layout: dataset ``embedding`` (n_vocab, P) float32."""
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("embedding", data=self.embeddings.cpu().numpy().astype(np.float32))

    @classmethod
    def from_file(
        cls, embedding_file: str | os.PathLike, vocab_file: str | os.PathLike, max_chars: int = 50
    ) -> TokenCache:
        """Reads a token-embedding file and the vocabulary file it was written from."""
        path = Path(embedding_file)
        if not path.is_file():
            raise TokenCacheError(
                f"{path}: token-embedding file not found; write one with TokenCache.build(...).save(path)"
            )
        tokens = read_tokens(vocab_file)
        try:
            with h5py.File(path, "r") as f:
                if "embedding" not in f:
                    raise TokenCacheError(
                        f"{path}: no dataset 'embedding'; not a token-embedding file"
                    )
                embeddings = torch.from_numpy(f["embedding"][...].astype(np.float32))
        except OSError as exc:
            raise TokenCacheError(f"{path}: not an HDF5 file ({exc})") from None
        if embeddings.ndim != 2 or embeddings.shape[0] != len(tokens):
            raise TokenCacheError(
                f"{path}: {embeddings.shape[0]} rows for the {len(tokens)} lines of {vocab_file}; "
                "use the vocabulary file the cache was written from"
            )
        return cls(tokens, embeddings, max_chars)
