"""Character ids of tokens, exactly as the original ELMo tools make them.

Each token becomes ``max_characters_per_token`` ids: ``[258 (begin word), utf-8 bytes (at most
max - 2), 259 (end word), 260 (pad) ...]``, then every id is shifted by +1 so that an all-zero
row means "no token here" (batch padding).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch

MAX_CHARACTERS_PER_TOKEN = 50
BEGIN_SENTENCE_CHAR = 256
END_SENTENCE_CHAR = 257
BEGIN_WORD_CHAR = 258
END_WORD_CHAR = 259
PADDING_CHAR = 260

BOS_TOKEN = "<S>"
EOS_TOKEN = "</S>"
UNK_TOKEN = "<UNK>"


def _marker_ids(char: int, max_chars: int) -> tuple[int, ...]:
    ids = [PADDING_CHAR] * max_chars
    ids[0], ids[1], ids[2] = BEGIN_WORD_CHAR, char, END_WORD_CHAR
    return tuple(i + 1 for i in ids)


@lru_cache(maxsize=2**16)
def token_to_char_ids(token: str, max_chars: int = MAX_CHARACTERS_PER_TOKEN) -> tuple[int, ...]:
    """The +1-shifted character ids of one token (``<S>`` and ``</S>`` get their marker ids).

    Raises:
        ValueError: the token is empty.
    """
    if token == BOS_TOKEN:
        return _marker_ids(BEGIN_SENTENCE_CHAR, max_chars)
    if token == EOS_TOKEN:
        return _marker_ids(END_SENTENCE_CHAR, max_chars)
    if not token:
        raise ValueError("empty token: split sentences on whitespace so that no token is ''")
    data = token.encode("utf-8", errors="replace")[: max_chars - 2]
    ids = [PADDING_CHAR + 1] * max_chars  # +1-shifted from here on
    ids[0] = BEGIN_WORD_CHAR + 1
    ids[1 : len(data) + 1] = [b + 1 for b in data]
    ids[len(data) + 1] = END_WORD_CHAR + 1
    return tuple(ids)


def batch_to_ids(
    sentences: Sequence[Sequence[str]], max_chars: int = MAX_CHARACTERS_PER_TOKEN
) -> torch.Tensor:
    """Character ids of a batch of tokenized sentences.

    Args:
        sentences: tokenized sentences, without ``<S>``/``</S>`` (the biLM adds them).
        max_chars: ids per token (the options' ``max_characters_per_token``).

    Returns:
        (batch, max sentence length, max_chars) LongTensor; padding positions are all zero.
    """
    if isinstance(sentences, str) or len(sentences) == 0:
        raise ValueError(
            "batch_to_ids needs a non-empty list of tokenized sentences (lists of str)"
        )
    if any(isinstance(s, str) for s in sentences):
        raise ValueError(
            "batch_to_ids needs tokenized sentences: a list of lists of tokens, not of strings"
        )
    longest = max(len(s) for s in sentences)
    ids = torch.zeros(len(sentences), longest, max_chars, dtype=torch.long)
    for row, sentence in enumerate(sentences):
        if sentence:
            ids[row, : len(sentence)] = torch.tensor(
                [token_to_char_ids(t, max_chars) for t in sentence]
            )
    return ids
