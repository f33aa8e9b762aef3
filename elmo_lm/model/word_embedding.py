"""The word inputs of an LM without a character CNN: one embedding row per vocabulary token.

The original trainer's ``_build_word_embeddings``: an ``embedding`` of ``n_tokens_vocab x
projection_dim``, looked up by vocabulary id, optionally the softmax's weights too
(``share_embedding_softmax``). Its inference code reads the ids shifted by one, 0 being batch
padding, and a zero row prepended for it (``bilm/model.py``, ``TokenBatcher``); so do the
inputs here: ``forward`` takes shifted ids and gives zeros at 0. Unknown tokens read
``<UNK>``'s row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from elmo_lm.cpu.path import may_read_on_host
from elmo_lm.formats.characters import BOS_TOKEN, EOS_TOKEN

UNK_TOKEN = "<UNK>"

RowLookup = Callable[[torch.Tensor], torch.Tensor]
"""ids (N,) -> rows (N, P) of the embedding: how a tied model's softmax looks its rows up."""


@torch.compiler.disable
def _sparse_rows(ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Rows of ``weight`` whose gradient is sparse (left out of ``torch.compile``'s graphs,
    which cannot make sparse gradients)."""
    return F.embedding(ids, weight, sparse=True)


class WordEmbedding(nn.Module):
    """Vocabulary ids to token embeddings.

    Args:
        vocab: the tokens in id order (``<S>``, ``</S>``, ``<UNK>`` among them), or their number
            where the tokens are not known (a model read without its ``vocab.txt``: it then
            takes ids, never tokens).
        dim: P, the embedding's width.
    """

    def __init__(self, vocab: Sequence[str] | int, dim: int):
        super().__init__()
        size = vocab if isinstance(vocab, int) else len(vocab)
        if size < 1:
            raise ValueError(
                "word inputs need the vocabulary's size: n_tokens_vocab in the options"
            )
        self.tokens = None if isinstance(vocab, int) else list(vocab)
        self._index = None if self.tokens is None else {t: i for i, t in enumerate(self.tokens)}
        # TensorFlow's default initialiser of the original's variable (Glorot uniform).
        limit = math.sqrt(6.0 / (size + dim))
        self.weight = nn.Parameter(torch.empty(size, dim).uniform_(-limit, limit))  # (V, P)
        self.rows: RowLookup | None = None  # set by a tied softmax (``Softmax.input_rows``)

    @property
    def n_tokens(self) -> int:
        return self.weight.shape[0]

    def token_ids(self, tokens: Sequence[str]) -> list[int]:
        """The shifted ids (vocabulary id + 1) of ``tokens``; unknown ones are ``<UNK>``'s.

        Raises:
            ValueError: the model was built without its vocabulary.
        """
        if self._index is None:
            raise ValueError(
                "this word-input model was read without its vocabulary; pass vocab_file= "
                "(the vocab.txt written with its weights)"
            )
        unk = self._index.get(UNK_TOKEN, 0)
        return [self._index.get(t, unk) + 1 for t in tokens]

    def boundary_ids(self) -> tuple[int, int]:
        """The shifted ids of ``<S>`` and ``</S>`` (0 and 1 in the vocabulary when it is not
        known: elmo_lm's vocabularies start with them)."""
        if self._index is None:
            return 1, 2
        return self._index[BOS_TOKEN] + 1, self._index[EOS_TOKEN] + 1

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(...) shifted ids -> (..., P) embeddings, zero at id 0 (padding).

        On the CPU the rows' gradient is sparse (only the rows looked up), as the softmax's; on
        an accelerator dense (an ``index_select``, which compiles); a tied softmax looks them up
        itself (``rows``), so that both reach one gradient.
        """
        flat = ids.reshape(-1)
        keep = (flat > 0).unsqueeze(1)
        rows = (flat - 1).clamp(min=0)
        if self.rows is not None:
            out = self.rows(rows)
        elif may_read_on_host(flat):
            out = _sparse_rows(rows, self.weight)
        else:
            out = torch.index_select(self.weight, 0, rows)
        return (out * keep.to(out.dtype)).view(*ids.shape, -1)
