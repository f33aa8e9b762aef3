"""Telling rows of character ids apart by one 64-bit hash: the distinct tokens of a batch, and the
keys of the token cache."""

from __future__ import annotations

import functools

import torch


def row_keys(rows: torch.Tensor) -> torch.Tensor:
    """(..., C) integer rows -> (...,) int64 keys: a fixed random linear hash of each row (one
    multiply-add per element; int64 arithmetic wraps around mod 2**64). Equal rows have equal
    keys; unequal rows almost never do, so a match is confirmed against the rows."""
    return (rows.long() * _hash_weights(rows.shape[-1], rows.device)).sum(-1)


def distinct_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(rows, dim=0, return_inverse=True)`` up to the order of the distinct rows,
    (M, C) -> (U, C), (M,), and much cheaper: rows are told apart by ``row_keys`` (a 1-D unique)
    and checked against them, falling back to the exact row unique on the (never seen) collision.
    """
    keys = row_keys(rows)  # (M,)
    distinct, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((len(distinct),), len(keys), device=rows.device)
    first = first.scatter_reduce_(0, inverse, torch.arange(len(keys), device=rows.device), "amin")
    unique = rows[first]  # (U, C) the first row of each key
    if not torch.equal(unique[inverse], rows):
        return torch.unique(rows, dim=0, return_inverse=True)
    return unique, inverse


@functools.lru_cache(maxsize=8)
def _hash_weights(width: int, device: torch.device) -> torch.Tensor:
    """(width,) fixed random odd 64-bit multipliers of ``row_keys``' hash."""
    g = torch.Generator().manual_seed(0x5EED)
    return (torch.randint(-(2**62), 2**62, (width,), generator=g) * 2 + 1).to(device)
