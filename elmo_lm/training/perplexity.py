"""Perplexities from summed log-likelihoods, as the original trainer reported them."""

from __future__ import annotations

import math

import torch


def perplexities(sums: torch.Tensor) -> dict[str, float]:
    """``ppl_fwd``, ``ppl_bwd`` and ``ppl`` (exp of the mean of both directions' mean losses,
    as the original reported) from summed (nll fwd, count fwd, nll bwd, count bwd). Without
    backward counts but forward ones (a forward LM alone): ``ppl_fwd`` and ``ppl``, the same."""
    nll_fwd, n_fwd, nll_bwd, n_bwd = (float(s) for s in sums)
    loss_fwd, loss_bwd = nll_fwd / max(n_fwd, 1.0), nll_bwd / max(n_bwd, 1.0)
    if n_bwd == 0 and n_fwd > 0:
        return {"ppl_fwd": math.exp(loss_fwd), "ppl": math.exp(loss_fwd)}
    return {
        "ppl_fwd": math.exp(loss_fwd),
        "ppl_bwd": math.exp(loss_bwd),
        "ppl": math.exp(0.5 * (loss_fwd + loss_bwd)),
    }
