"""BiLM behaviour: stateless determinism, padding independence, statefulness, training path."""

import pytest
import torch

from conftest import tiny_options
from elmo_lm import BiLM, BiLMOptions, batch_to_ids
from elmo_lm.bilm import bilm_state_detach, reverse_padded

SENTENCES = [["a", "man", "sat", "on", "the", "bank", "."], ["the", "bank", "closed"], ["ok"]]


@pytest.fixture
def bilm():
    torch.manual_seed(0)
    return BiLM(tiny_options()).eval()


def test_shapes_and_mask(bilm):
    out = bilm(batch_to_ids(SENTENCES))
    assert len(out["layers"]) == 3 == bilm.num_layers
    for layer in out["layers"]:
        assert layer.shape == (3, 7, bilm.output_dim)
        assert (layer[2, 1:] == 0).all()
    assert out["mask"].tolist()[2] == [True] + [False] * 6
    layer0 = out["layers"][0]
    torch.testing.assert_close(layer0[..., :8], layer0[..., 8:])


def test_sentence_alone_and_in_a_padded_batch_give_the_same_vectors(bilm):
    with torch.no_grad():
        batch = bilm(batch_to_ids(SENTENCES))["layers"]
        for row, sentence in enumerate(SENTENCES):
            alone = bilm(batch_to_ids([sentence]))["layers"]
            for a, b in zip(alone, batch):
                torch.testing.assert_close(a[0], b[row, : len(sentence)], atol=1e-5, rtol=0)


def test_stateless_calls_are_deterministic(bilm):
    ids = batch_to_ids(SENTENCES)
    with torch.no_grad():
        first = bilm(ids)["layers"]
        bilm(batch_to_ids([["other", "words"]] * 5))
        second = bilm(ids)["layers"]
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_stateful_rows_carry_state_and_reset_clears_it():
    torch.manual_seed(0)
    bilm = BiLM(tiny_options(), stateful=True).eval()
    ids = batch_to_ids(SENTENCES)
    with torch.no_grad():
        first = bilm(ids)["layers"][-1]
        second = bilm(ids)["layers"][-1]
        assert not torch.allclose(first, second)
        # A smaller batch uses the first rows' states and leaves the others alone.
        bilm(batch_to_ids(SENTENCES[:1]))
        bilm.reset_states()
        assert torch.equal(bilm(ids)["layers"][-1], first)


def test_reverse_padded():
    x = torch.arange(8).view(2, 4)
    assert reverse_padded(x, torch.tensor([4, 2])).tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]


def test_training_path_has_dropout_and_gradients():
    torch.manual_seed(0)
    bilm = BiLM(tiny_options(dropout=0.5)).train()
    ids = batch_to_ids([["a", "b", "c", "d"], ["e", "f", "g", "h"]])
    fwd, bwd, state = bilm.lm_forward(ids, ids.flip(1))
    assert fwd.shape == bwd.shape == (2, 4, 8)
    (fwd.sum() + bwd.sum()).backward()
    assert all(p.grad is not None for p in bilm.parameters())
    assert bilm.char_cnn.char_embed.weight.grad[0].abs().sum() == 0  # padding row stays zero
    fwd2, _, _ = bilm.lm_forward(ids, ids.flip(1), bilm_state_detach(state))
    assert not torch.allclose(fwd, fwd2)
    bilm.eval()
    with torch.no_grad():
        a = bilm.lm_forward(ids, ids.flip(1))[0]
        b = bilm.lm_forward(ids, ids.flip(1))[0]
    assert torch.equal(a, b)


def test_lm_forward_matches_forward_on_one_sentence():
    """The training path and the embedding path compute the same LSTMs."""
    torch.manual_seed(0)
    bilm = BiLM(tiny_options()).eval()
    tokens = ["<S>", "the", "bank", "closed", "</S>"]
    ids = batch_to_ids([tokens])
    with torch.no_grad():
        fwd, bwd, _ = bilm.lm_forward(ids, ids.flip(1))
        top = bilm(batch_to_ids([tokens[1:-1]]))["layers"][-1]
    torch.testing.assert_close(top[0, :, :8], fwd[0, 1:-1], atol=1e-6, rtol=0)
    torch.testing.assert_close(top[0, :, 8:], bwd[0].flip(0)[1:-1], atol=1e-6, rtol=0)


def test_published_shapes_have_the_published_parameter_counts():
    small = BiLMOptions()
    small.lstm.dim, small.lstm.projection_dim, small.char_cnn.n_highway = 1024, 128, 1
    n = sum(p.numel() for p in BiLM(small).parameters())
    assert abs(n - 13.6e6) / 13.6e6 < 0.02
