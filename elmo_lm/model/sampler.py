"""The log-uniform sampler of the sampled softmax: ``n_negative_samples`` distinct classes
drawn from the log-uniform (Zipfian) distribution over the vocabulary ids, as
``tf.nn.log_uniform_candidate_sampler`` with ``unique=True`` draws them in the original ELMo
trainer (ids ordered by descending count), and the expected count of each class that corrects
its logit.
"""

from __future__ import annotations

import functools
import math

import torch

from elmo_lm.cpu import kernels
from elmo_lm.cpu.path import may_read_on_host


def log_uniform_probs(ids: torch.Tensor, range_max: int) -> torch.Tensor:
    """P(id) = log((id + 2) / (id + 1)) / log(range_max + 1), the sampling law of each id."""
    ids = ids.double()
    return torch.log1p(1.0 / (ids + 1.0)) / math.log1p(range_max)


def expected_counts(
    probs: torch.Tensor, num_tries: torch.Tensor | int, num_sampled: int
) -> torch.Tensor:
    """Expected times a class is drawn in ``num_tries`` draws (TF's ``ExpectedCountHelper``).

    ``num_sampled * p`` when no draw was rejected as a duplicate, else
    ``1 - (1 - p) ** num_tries`` (the chance it was drawn at all, as it appears once).
    ``num_tries`` may be a tensor (it stays on the device: no host synchronisation).
    """
    num_tries = torch.as_tensor(num_tries, device=probs.device)
    return torch.where(
        num_tries == num_sampled,
        probs * num_sampled,
        -torch.expm1(num_tries.to(probs.dtype) * torch.log1p(-probs)),
    )


@torch.compiler.disable  # host-side arithmetic, worked out once per (S, V)
@functools.lru_cache(maxsize=16)
def draws_needed(num_sampled: int, range_max: int, sigmas: float = 8.0) -> int:
    """Log-uniform draws that give ``num_sampled`` distinct ids out of ``range_max`` but with a
    chance far below 1e-12 of falling short: the expected number of distinct ids in ``m`` draws,
    ``sum(1 - (1 - p) ** m)``, less ``sigmas`` standard deviations, reaches ``num_sampled``.
    """
    p = log_uniform_probs(torch.arange(range_max, device="cpu"), range_max)  # on the host
    log_miss = torch.log1p(-p)

    def short(m: int) -> bool:
        q = -torch.expm1(m * log_miss)  # chance that id is among m draws
        return float(q.sum() - sigmas * (q * (1 - q)).sum().sqrt()) < num_sampled

    lo, hi = num_sampled, 2 * num_sampled
    while short(hi):
        lo, hi = hi, 2 * hi
    while hi - lo > max(1, lo // 256):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if short(mid) else (lo, mid)
    return hi


def first_distinct(
    draws: torch.Tensor, num_sampled: int, range_max: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``num_sampled`` distinct values of ``draws`` (M,) in order of first draw, how
    many draws it took to see them (``num_tries``), and how many distinct values there are.

    Fixed shapes only (a first-draw table over the ids, a running count): no sort, no loop, and
    no host synchronisation, so it runs as a few kernels on any device.
    """
    m = draws.shape[0]
    positions = torch.arange(m, device=draws.device)
    first = torch.full((range_max,), m, device=draws.device)  # (V,) first draw of each id
    first.scatter_reduce_(0, draws, positions, "amin")
    new = first[draws] == positions  # (M,) the draw is its id's first
    rank = new.cumsum(0)  # (M,) distinct ids up to and including each draw
    take = new & (rank <= num_sampled)
    ids = draws.new_zeros(num_sampled + 1)  # the last slot collects every draw not taken
    ids.scatter_(0, torch.where(take, rank - 1, num_sampled), draws)
    num_tries = torch.searchsorted(rank, num_sampled) + 1
    return ids[:num_sampled], num_tries, rank[-1]


def log_uniform_candidates(
    num_sampled: int,
    range_max: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    read_on: bool = True,
    num_draws: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draws ``num_sampled`` distinct ids log-uniformly from ``[0, range_max)``, as TF's
    ``log_uniform_candidate_sampler(unique=True)``: a stream of draws is read until that many
    distinct ids came up, and ``num_tries`` counts the draws read.

    The stream is drawn ``draws_needed`` at a time, in one vectorised pass (``first_distinct``),
    which holds enough distinct ids but with a chance far below 1e-12. On the CPU, where a check
    costs nothing, a pass that falls short reads more of the stream; on an accelerator the check
    is an asynchronous assertion, so that the step needs no host synchronisation
    (``read_on=False`` skips the CPU check too, as a test of that path). ``num_draws``: the
    ``draws_needed`` of these sizes, worked out beforehand (a compiled step does not call it).

    Returns:
        The ids (num_sampled,) long on ``device``, in order of first draw, and ``num_tries``, a
        0-dim long tensor there.
    """
    if not 0 < num_sampled < range_max:
        raise ValueError(f"num_sampled={num_sampled} must lie in (0, range_max={range_max})")
    device = torch.device(device or "cpu")
    m = num_draws or draws_needed(num_sampled, range_max)
    log_range = math.log1p(range_max)

    def draw(n: int) -> torch.Tensor:
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=device)
        return ((u * log_range).exp().long() - 1).clamp_(0, range_max - 1)  # (n,)

    draws = draw(m)
    ids, num_tries, found = _first_distinct(draws, num_sampled, range_max)
    if not may_read_on_host(draws):
        torch._assert_async(found >= num_sampled, "too few distinct log-uniform draws")
        return ids, num_tries
    while read_on and found < num_sampled:  # far below 1e-12 per call
        draws = torch.cat([draws, draw(m)])
        ids, num_tries, found = _first_distinct(draws, num_sampled, range_max)
    return ids, num_tries


def _first_distinct(draws: torch.Tensor, num_sampled: int, range_max: int):
    """``first_distinct``; on the native path one C loop over the draws (``kernels.c``, which
    stops counting distinct values at ``num_sampled``), several times faster than the torch
    version's table over the ids (docs/PERFORMANCE.md)."""
    found = kernels.first_distinct(draws, num_sampled, range_max)
    return first_distinct(draws, num_sampled, range_max) if found is None else found
