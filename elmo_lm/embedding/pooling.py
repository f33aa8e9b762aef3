"""Sentence vectors: one vector per sentence, pooled over its tokens' vectors.

``pool_tokens`` is the one place that pools, for ``Elmo.embed_sentences`` (``pool=``) and
``elmo-embed pool=``. It pools the rows of one sentence's array, which holds its tokens only:
no padding, and no ``<S>``/``</S>`` (the biLM reads them but the embedder never returns them).
"""

from __future__ import annotations

import numpy as np

from elmo_lm.errors import UserError

POOLS = ("none", "mean", "max")
"""``none``: one vector per token, as before; ``mean``: the mean over the sentence's tokens (as
TF-Hub's ELMo ``default`` output, a mean over tokens); ``max``: the elementwise maximum."""


class PoolError(UserError):
    """A ``pool=`` that is not one of ``POOLS``."""


def check_pool(pool: str) -> str:
    """``pool`` itself, or a one-line error naming the choices.

    Raises:
        PoolError: ``pool`` is not one of ``POOLS``.
    """
    if pool not in POOLS:
        raise PoolError(f"pool={pool!r} is not one of {', '.join(POOLS)}")
    return pool


def pool_tokens(vectors: np.ndarray, pool: str) -> np.ndarray:
    """Pools one sentence's vectors over its token axis, the second to last.

    Args:
        vectors: (..., n, D) float32, as ``embed_sentences`` gives one sentence: (n, D), or
            (L + 1, n, D) for ``mode="all"``.
        pool: one of ``POOLS``.

    Returns:
        ``vectors`` itself for ``none``; else (..., D) float32: (D,), or (L + 1, D) for
        ``mode="all"``. A sentence of no tokens pools to zeros.

    Raises:
        PoolError: an unknown ``pool``.
    """
    if check_pool(pool) == "none":
        return vectors
    if vectors.shape[-2] == 0:
        return np.zeros(vectors.shape[:-2] + vectors.shape[-1:], dtype=np.float32)
    pooled = vectors.mean(axis=-2) if pool == "mean" else vectors.max(axis=-2)
    return np.ascontiguousarray(pooled, dtype=np.float32)
