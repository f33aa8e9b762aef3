"""Each training step's random draws (negatives, dropout, state resets): seeded per rank and
step, so that a run is reproducible and a resumed run draws what the uninterrupted one would
have drawn."""

from __future__ import annotations

import torch


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of one rank's random draws at one training step.

    The CPU generator (mt19937) keeps only a seed's low 32 bits, so those differ for every
    (rank, step) of a run: steps count up by one, and ranks (and seeds) sit odd multiples of
    the golden ratio apart in 32 bits, far from any step count.
    """
    return (seed * 0x85EBCA6B + rank * 0x9E3779B9 + step) % 2**32


def seed_generators(seed: int, device: torch.device) -> None:
    """Seeds the CPU generator and, on a GPU, that of this rank's device: the generators a
    step draws from. (``torch.manual_seed`` seeds every device of every backend, paid every
    step for nothing; bench/bench_speed.py times steps, figures in docs/PERFORMANCE.md.)"""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)
    elif device.type != "cpu":
        torch.manual_seed(seed)


def reset_rows(state, prob: float):
    """``state`` with each row (batch entry) zeroed with chance ``prob``, in every layer and
    direction alike; state tensors are (layers, 2, B, dim)."""
    h, c = state
    keep = (torch.rand(h.shape[2], device=h.device) >= prob).to(h.dtype)  # (B,)
    return h * keep[:, None], c * keep[:, None].to(c.dtype)
