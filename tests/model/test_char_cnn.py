"""The char CNN's windowed matmuls against a plain VALID convolution over all positions."""

import random

import pytest
import torch
import torch.nn.functional as F

from elmo_lm import batch_to_ids
from elmo_lm.cpu import path
from elmo_lm.model.char_cnn import CharCNN


def plain_char_cnn(cnn: CharCNN, ids: torch.Tensor) -> torch.Tensor:
    chars = cnn.char_embed(ids).transpose(1, 2)  # (n, D, 50)
    pieces = []
    for (width, num), w, b in zip(cnn.filters, cnn.conv_weights, cnn.conv_biases):
        kernel = w.view(width, cnn.char_dim, num).permute(2, 1, 0)  # (num, D, width)
        pieces.append(F.conv1d(chars, kernel, b).amax(-1))
    x = cnn.activation(torch.cat(pieces, -1))
    for hw in cnn.highways:
        x = hw(x)
    return x if cnn.proj_weight is None else x @ cnn.proj_weight + cnn.proj_bias


@pytest.mark.parametrize("name", ["native", "torch", "accelerator"])  # accelerator: all windows
@pytest.mark.parametrize("grouped", [False, True])  # tokens in one group, or by length
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_matches_a_plain_convolution_for_all_lengths(
    tiny_options, activation, grouped, monkeypatch, name
):
    if grouped:  # groups by length: 300 tokens make four
        monkeypatch.setattr(CharCNN, "MIN_GROUPING_MACS", 0)
    torch.manual_seed(0)
    cnn = CharCNN(tiny_options(activation=activation, filters=[[1, 4], [3, 5], [7, 6]])).eval()
    rng = random.Random(0)
    tokens = ["".join(rng.choices("abcdéxyz", k=rng.randint(1, 60))) for _ in range(300)]
    ids = batch_to_ids([tokens])[0]
    with torch.no_grad(), path.use(name):
        torch.testing.assert_close(cnn(ids), plain_char_cnn(cnn, ids), atol=1e-5, rtol=0)
        torch.testing.assert_close(cnn(ids[:5]), plain_char_cnn(cnn, ids[:5]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("grouped", [False, True])
def test_gradients_match_a_plain_convolution(tiny_options, grouped, monkeypatch):
    """The stacked filters' matmul, its padding and its masks give the plain gradients."""
    if grouped:
        monkeypatch.setattr(CharCNN, "MIN_GROUPING_MACS", 0)
    torch.manual_seed(0)
    cnn = CharCNN(tiny_options(filters=[[1, 4], [3, 5], [7, 6]]))
    rng = random.Random(1)
    tokens = ["".join(rng.choices("abcdxyz", k=rng.randint(1, 60))) for _ in range(300)]
    ids = batch_to_ids([tokens])[0]
    grad = torch.randn(len(tokens), cnn.output_dim)
    results = []
    for run in (cnn, lambda i: plain_char_cnn(cnn, i)):
        cnn.zero_grad(set_to_none=True)
        run(ids).backward(grad)
        results.append([p.grad.clone() for p in cnn.parameters()])
    for ours, plain in zip(*results):
        torch.testing.assert_close(ours, plain, atol=1e-4, rtol=1e-4)


def test_filters_totalling_projection_dim_have_no_projection(tiny_options):
    """As the original tools: ``CNN_proj`` exists only when the filters total more than P."""
    torch.manual_seed(0)
    cnn = CharCNN(tiny_options(filters=[[1, 3], [2, 5]], projection_dim=8)).eval()
    assert cnn.proj_weight is None and not any("proj" in n for n, _ in cnn.named_parameters())
    ids = batch_to_ids([["a", "bank", "x" * 60]])[0]
    with torch.no_grad():
        out = cnn(ids)
        assert out.shape == (3, 8)
        torch.testing.assert_close(out, plain_char_cnn(cnn, ids), atol=1e-5, rtol=0)


def test_char_lookup_is_embedding_with_padding_idx():
    from elmo_lm.model.char_cnn import _CharLookup

    g = torch.Generator().manual_seed(0)
    weight = torch.randn(262, 4, generator=g)
    weight[0] = 0.0
    ids = torch.randint(0, 262, (30, 9), generator=g)
    ids[0] = 0  # a padding token: row 0 gets no gradient
    grad = torch.randn(30, 9, 4, generator=g)
    results = []
    for lookup in (_CharLookup.apply, lambda i, w: F.embedding(i, w, padding_idx=0)):
        w = weight.clone().requires_grad_()
        out = lookup(ids, w)
        out.backward(grad)
        results.append((out.detach(), w.grad))
    for ours, theirs in zip(*results):
        torch.testing.assert_close(ours, theirs)
    assert results[0][1][0].abs().sum() == 0
