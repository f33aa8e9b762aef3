"""The sampled softmax against the full softmax and the log-uniform formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from elmo_lm.softmax import (
    Softmax,
    expected_counts,
    full_softmax_nll,
    log_uniform_candidates,
    log_uniform_probs,
    sampled_softmax_nll,
)


def _problem(n=12, p=6, v=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, p, generator=g)
    targets = torch.randint(0, v, (n,), generator=g)
    weight = torch.randn(v, p, generator=g)
    bias = torch.randn(v, 1, generator=g)
    return inputs, targets, weight, bias


def test_all_classes_sampled_without_correction_is_the_full_softmax():
    inputs, targets, weight, bias = _problem()
    sampled = torch.arange(weight.shape[0])
    nll = sampled_softmax_nll(inputs, targets, weight, bias, sampled, None, None)
    full = F.cross_entropy(inputs @ weight.t() + bias.squeeze(1), targets, reduction="none")
    torch.testing.assert_close(nll, full)
    torch.testing.assert_close(full_softmax_nll(inputs, targets, weight, bias), full)
    with torch.no_grad():  # chunked path
        chunked = full_softmax_nll(inputs, targets, weight, bias, max_elements=60)
    torch.testing.assert_close(chunked, full)


def test_accidental_hits_are_removed():
    inputs, targets, weight, bias = _problem()
    sampled = torch.tensor([3, 7, 11])
    targets[:4] = torch.tensor([3, 7, 11, 5])
    nll = sampled_softmax_nll(inputs, targets, weight, bias, sampled, None, None)
    logits = inputs @ weight.t() + bias.squeeze(1)
    for i in range(len(targets)):
        t = int(targets[i])
        others = [int(s) for s in sampled if int(s) != t]
        row = logits[i, [t, *others]]
        torch.testing.assert_close(nll[i], -row.log_softmax(0)[0])
    kept = sampled_softmax_nll(inputs, targets, weight, bias, sampled, None, None, False)
    assert (kept[:3] > nll[:3]).all()  # the hit counted as a negative raises the loss
    torch.testing.assert_close(kept[3:], nll[3:])


def test_correction_subtracts_log_expected_count():
    inputs, targets, weight, bias = _problem()
    sampled = torch.tensor([0, 2, 9, 20])
    q_true, q_sampled = torch.rand(len(targets)) + 0.1, torch.rand(4) + 0.1
    nll = sampled_softmax_nll(inputs, targets, weight, bias, sampled, q_true.log(), q_sampled.log())
    logits = inputs @ weight.t() + bias.squeeze(1)
    for i in range(len(targets)):
        t = int(targets[i])
        row = [logits[i, t] - q_true[i].log()]
        row += [logits[i, s] - q_sampled[j].log() for j, s in enumerate(sampled) if int(s) != t]
        torch.testing.assert_close(nll[i], -torch.stack(row).log_softmax(0)[0])


def test_log_uniform_formula():
    v = 1000
    probs = log_uniform_probs(torch.arange(v), v)
    assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-9)
    k = 41
    assert math.isclose(float(probs[k]), math.log((k + 2) / (k + 1)) / math.log(v + 1))
    # Without duplicates: S * p; with rejected duplicates: 1 - (1 - p) ** tries.
    torch.testing.assert_close(expected_counts(probs[:3], 8, 8), probs[:3] * 8)
    torch.testing.assert_close(expected_counts(probs[:3], 20, 8), 1 - (1 - probs[:3]) ** 20)


def test_candidates_are_distinct_and_log_uniform():
    g = torch.Generator().manual_seed(0)
    ids, tries = log_uniform_candidates(200, 1000, generator=g)
    assert len(ids) == 200 and len(set(ids.tolist())) == 200
    assert ids.min() >= 0 and ids.max() < 1000 and tries >= 200
    # The expected number of distinct ids after `tries` draws is the sum of expected counts.
    probs = log_uniform_probs(torch.arange(1000), 1000)
    expected = float(expected_counts(probs, tries, 200).sum())
    assert abs(expected - 200) < 20
    # Low ids are drawn first and most often: id 0 has p = 0.1.
    assert 0 in ids.tolist()


def test_candidates_need_more_classes_than_samples():
    with pytest.raises(ValueError, match="range_max"):
        log_uniform_candidates(10, 10)
    with pytest.raises(ValueError, match="n_negative_samples"):
        Softmax(10, 4, n_negative_samples=10, sampled=True)


def test_sampled_gradient_is_sparse_and_touches_few_rows():
    softmax = Softmax(5000, 8, n_negative_samples=64).train()
    inputs = torch.randn(2, 5, 8, requires_grad=True)
    targets = torch.randint(0, 5000, (2, 5))
    targets[0, 0] = -1
    loss, count = softmax(inputs, targets)
    assert count == 9
    loss.backward()
    grad = softmax.weight.grad
    assert grad.is_sparse and grad.coalesce()._nnz() <= 9 + 64
    assert softmax.bias.grad.is_sparse
    assert inputs.grad[0, 0].abs().sum() == 0  # a -1 target counts nothing


def test_eval_mode_is_the_exact_full_softmax():
    softmax = Softmax(50, 4, n_negative_samples=8).eval()
    inputs, targets = torch.randn(7, 4), torch.randint(0, 50, (7,))
    targets[2] = -1
    total, count = softmax(inputs, targets)
    keep = targets >= 0
    full = F.cross_entropy(
        inputs[keep] @ softmax.weight.t() + softmax.bias.squeeze(1), targets[keep], reduction="sum"
    )
    assert count == 6
    torch.testing.assert_close(total, full)
