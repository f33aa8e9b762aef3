"""The output softmax of one LM direction: sampled (log-uniform negatives) or full.

Training on a large vocabulary uses a sampled softmax as ``tf.nn.sampled_softmax_loss`` does in
the original ELMo trainer: ``n_negative_samples`` distinct classes drawn from the log-uniform
(Zipfian) distribution over the vocabulary ids, which assumes ids ordered by descending count;
each logit is corrected by the log of its class's expected count, and a sampled class that
equals the row's target ("accidental hit") is removed from that row. Only the rows of the targets
and of the sampled classes are read, and their gradient is sparse, so a step costs the same
whatever the size of the vocabulary (with ``torch.optim.Adagrad``, which updates sparse rows).

Held-out perplexity always uses the full softmax, computed in chunks of rows so that a large
vocabulary does not need a (tokens, vocabulary) matrix at once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def log_uniform_probs(ids: torch.Tensor, range_max: int) -> torch.Tensor:
    """P(id) = log((id + 2) / (id + 1)) / log(range_max + 1), the sampling law of each id."""
    ids = ids.double()
    return torch.log1p(1.0 / (ids + 1.0)) / math.log1p(range_max)


def expected_counts(probs: torch.Tensor, num_tries: int, num_sampled: int) -> torch.Tensor:
    """Expected times a class is drawn in ``num_tries`` draws (TF's ``ExpectedCountHelper``).

    ``num_sampled * p`` when no draw was rejected as a duplicate, else
    ``1 - (1 - p) ** num_tries`` (the chance it was drawn at all, as it appears once).
    """
    if num_tries == num_sampled:
        return probs * num_sampled
    return -torch.expm1(num_tries * torch.log1p(-probs))


def log_uniform_candidates(
    num_sampled: int, range_max: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, int]:
    """Draws ``num_sampled`` distinct ids log-uniformly from ``[0, range_max)``, as TF's
    ``log_uniform_candidate_sampler(unique=True)``: draws are repeated until that many distinct
    ids came up, and ``num_tries`` counts all draws.

    Returns:
        The ids (num_sampled,) long on the CPU, in order of first draw, and ``num_tries``.
    """
    if not 0 < num_sampled < range_max:
        raise ValueError(f"num_sampled={num_sampled} must lie in (0, range_max={range_max})")
    log_range = math.log1p(range_max)
    accepted = torch.empty(0, dtype=torch.long)
    num_tries = 0
    while len(accepted) < num_sampled:
        need = num_sampled - len(accepted)
        m = max(2 * need, 1024)
        u = torch.rand(m, generator=generator, dtype=torch.float64)
        draws = ((u * log_range).exp().long() - 1).clamp_(0, range_max - 1)  # (m,)
        # A draw is new when it is its value's first draw in this chunk and was not accepted before.
        uniq, inverse = torch.unique(draws, return_inverse=True)
        positions = torch.arange(m)
        first = torch.full((len(uniq),), m).scatter_reduce_(0, inverse, positions, "amin")
        new = (first[inverse] == positions) & ~torch.isin(draws, accepted)
        found = new.cumsum(0)
        if found[-1] >= need:
            stop = int(torch.searchsorted(found, need)) + 1  # draws used to reach `need`
            num_tries += stop
            accepted = torch.cat([accepted, draws[:stop][new[:stop]]])
        else:
            num_tries += m
            accepted = torch.cat([accepted, draws[new]])
    return accepted, num_tries


def sampled_softmax_nll(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    sampled: torch.Tensor,
    log_true_expected: torch.Tensor | None,
    log_sampled_expected: torch.Tensor | None,
    remove_accidental_hits: bool = True,
) -> torch.Tensor:
    """Per-token loss of the sampled softmax (``tf.nn.sampled_softmax_loss``).

    Args:
        inputs: (N, P) LM outputs.
        targets: (N,) class ids.
        weight: (V, P) softmax weights; only the target and sampled rows are read, through a
            sparse embedding lookup, so their gradient is sparse.
        bias: (V, 1) softmax biases (a column, so that its lookup is sparse too).
        sampled: (S,) sampled class ids.
        log_true_expected: (N,) log expected count of each target, subtracted from its logit;
            None for no correction.
        log_sampled_expected: (S,) the same for the sampled classes.
        remove_accidental_hits: a sampled class equal to the row's target gets no logit.

    Returns:
        (N,) negative log-likelihood of each target among itself and the sampled classes.
    """
    n = targets.shape[0]
    ids = torch.cat([targets, sampled])  # (N + S,)
    rows = F.embedding(ids, weight, sparse=True)  # (N + S, P)
    biases = F.embedding(ids, bias, sparse=True).squeeze(1)  # (N + S,)
    true_w, sampled_w = rows[:n], rows[n:]
    true_b, sampled_b = biases[:n], biases[n:]
    true_logits = (inputs * true_w).sum(-1) + true_b  # (N,)
    if log_true_expected is not None:
        true_logits = true_logits - log_true_expected
    if log_sampled_expected is not None:
        sampled_b = sampled_b - log_sampled_expected
    sampled_logits = torch.addmm(sampled_b, inputs, sampled_w.t())  # (N, S)
    if remove_accidental_hits:
        hits = sampled[None, :] == targets[:, None]  # (N, S)
        sampled_logits = sampled_logits.masked_fill(hits, float("-inf"))
    # -log softmax([true, sampled])[0], without building the (N, 1 + S) matrix.
    return torch.logaddexp(true_logits, sampled_logits.logsumexp(-1)) - true_logits


def full_softmax_nll(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    max_elements: int = 2**24,
) -> torch.Tensor:
    """Per-token loss of the full softmax, (N, P) and (N,) -> (N,).

    Without autograd, rows go through in chunks of at most ``max_elements`` logits, so memory
    stays bounded for any vocabulary; with autograd, all at once.
    """
    b = bias.squeeze(1)
    if torch.is_grad_enabled():
        return F.cross_entropy(F.linear(inputs, weight, b), targets, reduction="none")
    chunk = max(1, max_elements // weight.shape[0])
    return (
        torch.cat(
            [
                F.cross_entropy(F.linear(x, weight, b), t, reduction="none")
                for x, t in zip(inputs.split(chunk), targets.split(chunk))
            ]
        )
        if len(targets)
        else inputs.new_zeros(0)
    )


class Softmax(nn.Module):
    """The softmax of one LM direction over a vocabulary, separate from the input embeddings.

    Args:
        n_classes: V, the vocabulary size (ids in descending count order for sampling).
        dim: P, the LM output size.
        n_negative_samples: S, negatives per training step when ``sampled``.
        sampled: train with the sampled softmax (needs ``S < V``); else the full softmax.
    """

    def __init__(
        self, n_classes: int, dim: int, n_negative_samples: int = 8192, sampled: bool = True
    ):
        super().__init__()
        if sampled and not 0 < n_negative_samples < n_classes:
            raise ValueError(
                f"a sampled softmax needs 0 < n_negative_samples ({n_negative_samples}) < "
                f"vocabulary size ({n_classes}); use fewer negatives or the full softmax"
            )
        self.n_classes = n_classes
        self.n_negative_samples = n_negative_samples
        self.sampled = sampled
        # The original trainer's initialisation: N(0, 1 / sqrt(P)) weights, zero biases.
        self.weight = nn.Parameter(torch.randn(n_classes, dim) * dim**-0.5)  # (V, P)
        self.bias = nn.Parameter(torch.zeros(n_classes, 1))  # (V, 1)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Summed loss over the targets that are not -1, and their number.

        Args:
            inputs: (..., P) LM outputs.
            targets: (...) next-token ids, -1 where there is none.

        Returns:
            The summed negative log-likelihood (sampled in training mode when ``sampled``, else
            exact) and the count of targets.
        """
        keep = targets >= 0
        x, t = inputs[keep], targets[keep]  # (N, P), (N,)
        if self.training and self.sampled:
            nll = self.sampled_nll(x, t)
        else:
            nll = full_softmax_nll(x, t, self.weight, self.bias)
        return nll.sum(), len(t)

    def sampled_nll(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N, P), (N,) -> (N,) sampled-softmax losses with freshly drawn negatives."""
        sampled, num_tries = log_uniform_candidates(self.n_negative_samples, self.n_classes)
        sampled = sampled.to(targets.device, non_blocking=True)
        log_q = [
            expected_counts(
                log_uniform_probs(ids, self.n_classes), num_tries, self.n_negative_samples
            )
            .log()
            .to(inputs.dtype)
            for ids in (targets, sampled)
        ]
        return sampled_softmax_nll(inputs, targets, self.weight, self.bias, sampled, *log_q)
