"""BiLM behaviour: stateless determinism, padding independence, statefulness, training path."""

import pytest
import torch

from elmo_lm import BiLM, BiLMOptions, batch_to_ids
from elmo_lm.model.bilm import bilm_state_detach, reverse_padded, warm_up_inputs

SENTENCES = [["a", "man", "sat", "on", "the", "bank", "."], ["the", "bank", "closed"], ["ok"]]


def test_shapes_and_mask(bilm):
    out = bilm(batch_to_ids(SENTENCES))
    assert len(out["layers"]) == 3 == bilm.n_representations
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


def test_stateful_rows_carry_state_and_reset_clears_it(tiny_options):
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


def test_training_path_has_dropout_and_gradients(tiny_options):
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


def test_lm_forward_matches_forward_on_one_sentence(tiny_options):
    """The training path and the embedding path compute the same LSTMs."""
    torch.manual_seed(0)
    bilm = BiLM(tiny_options()).eval()
    tokens = ["<S>", "the", "bank", "closed", "</S>"]
    ids = batch_to_ids([tokens])
    with torch.no_grad():
        fwd, bwd, _ = bilm.lm_forward(ids, ids.flip(1), bilm.warm_state())
        top = bilm(batch_to_ids([tokens[1:-1]]))["layers"][-1]
    torch.testing.assert_close(top[0, :, :8], fwd[0, 1:-1], atol=1e-6, rtol=0)
    torch.testing.assert_close(top[0, :, 8:], bwd[0].flip(0)[1:-1], atol=1e-6, rtol=0)


def test_published_shapes_have_the_published_parameter_counts():
    small = BiLMOptions()
    small.lstm.dim, small.lstm.projection_dim, small.char_cnn.n_highway = 1024, 128, 1
    n = sum(p.numel() for p in BiLM(small).parameters())
    assert abs(n - 13.6e6) / 13.6e6 < 0.02


def test_warm_start_is_deterministic_and_batch_independent(tiny_options):
    torch.manual_seed(0)
    bilm = BiLM(tiny_options()).eval()
    others = [["other", "words", "here"], ["x"] * 9]
    with torch.no_grad():
        batch = bilm(batch_to_ids(SENTENCES + others))["layers"]
        reordered = bilm(batch_to_ids(others[::-1] + SENTENCES[::-1]))["layers"]
        for row, sentence in enumerate(SENTENCES):
            alone = bilm(batch_to_ids([sentence]))["layers"]
            again = bilm(batch_to_ids([sentence]))["layers"]
            back = len(reordered[0]) - 1 - row
            for a, b, c, d in zip(alone, again, batch, reordered):
                assert torch.equal(a, b)
                torch.testing.assert_close(c[row, : len(sentence)], a[0], atol=1e-6, rtol=0)
                torch.testing.assert_close(d[back, : len(sentence)], a[0], atol=1e-6, rtol=0)


def test_warm_state_is_the_state_after_the_warm_up_inputs_and_zero_start_is_the_old_result(
    tiny_options,
):
    """Warm: the sentence continues the warm-up context; warm_start=False: from zeros."""
    torch.manual_seed(0)
    warm = BiLM(tiny_options()).eval()
    cold = BiLM(tiny_options(), warm_start=False).eval()
    cold.load_state_dict(warm.state_dict())
    fwd_context, bwd_context = warm_up_inputs()
    sentence = ["the", "bank", "closed"]
    fwd_in = [*fwd_context, "<S>", *sentence]
    bwd_in = [*bwd_context, "</S>", *sentence[::-1]]
    with torch.no_grad():
        fwd, bwd, _ = warm.lm_forward(batch_to_ids([fwd_in]), batch_to_ids([bwd_in]))
        fwd_zero, bwd_zero, _ = cold.lm_forward(
            batch_to_ids([["<S>", *sentence]]), batch_to_ids([["</S>", *sentence[::-1]]])
        )
        top = warm(batch_to_ids([sentence]))["layers"][-1][0]
        top_zero = cold(batch_to_ids([sentence]))["layers"][-1][0]
    k = len(fwd_context) + 1
    torch.testing.assert_close(top[:, :8], fwd[0, k:], atol=1e-6, rtol=0)
    torch.testing.assert_close(top[:, 8:], bwd[0, k:].flip(0), atol=1e-6, rtol=0)
    torch.testing.assert_close(top_zero[:, :8], fwd_zero[0, 1:], atol=1e-6, rtol=0)
    torch.testing.assert_close(top_zero[:, 8:], bwd_zero[0, 1:].flip(0), atol=1e-6, rtol=0)
    assert not torch.allclose(top, top_zero, atol=1e-3)


def test_warm_state_follows_the_weights(tiny_options):
    """Cached in eval mode without gradients, recomputed when a weight changes; computed fresh,
    with gradients, in training mode."""
    torch.manual_seed(0)
    bilm = BiLM(tiny_options()).eval()
    ids = batch_to_ids(SENTENCES)
    with torch.no_grad():
        h1, _ = bilm.warm_state()
        assert bilm.warm_state()[0].data_ptr() == h1.data_ptr()  # cached
        before = bilm(ids)["layers"][-1]
    other = BiLM(tiny_options())
    bilm.load_state_dict(other.state_dict())
    with torch.no_grad():
        assert not torch.allclose(bilm.warm_state()[0], h1)
        fresh = BiLM(tiny_options()).eval()
        fresh.load_state_dict(other.state_dict())
        torch.testing.assert_close(
            bilm(ids)["layers"][-1], fresh(ids)["layers"][-1], atol=0, rtol=0
        )
        assert not torch.allclose(bilm(ids)["layers"][-1], before)
    # Fine-tuning: an optimizer step changes the weights in place; gradients reach them
    # through the warm state.
    with torch.no_grad():
        cached = bilm.warm_state()[0].clone()
    bilm.train()
    optimizer = torch.optim.SGD(bilm.parameters(), lr=0.1)
    h, c = bilm.warm_state()
    (h.sum() + c.sum()).backward()
    assert bilm.lstm.weights[0].grad.abs().sum() > 0
    optimizer.step()
    bilm.eval()
    with torch.no_grad():
        stepped = bilm.warm_state()[0]
        torch.testing.assert_close(stepped, bilm.context_state(*warm_up_inputs())[0])
        assert not torch.allclose(stepped, cached)
        # Another warm-up context gives another state.
        bilm.warm_up = ("the bank closed .",)
        other_context = bilm.warm_state()[0]
        expected = bilm.context_state(*warm_up_inputs(["the bank closed ."]))[0]
        torch.testing.assert_close(other_context, expected)
        assert not torch.allclose(other_context, stepped)


def test_warm_up_inputs_are_those_of_the_training_streams(tiny_options):
    assert warm_up_inputs(["a b .", "c ."]) == (
        ["<S>", "a", "b", ".", "<S>", "c", "."],
        ["</S>", ".", "b", "a", "</S>", ".", "c"],
    )
    with pytest.raises(ValueError, match="warm_up needs at least one sentence"):
        BiLM(tiny_options(), warm_up=())


def test_stateful_rows_start_warm(tiny_options):
    torch.manual_seed(0)
    stateless = BiLM(tiny_options()).eval()
    stateful = BiLM(tiny_options(), stateful=True).eval()
    stateful.load_state_dict(stateless.state_dict())
    with torch.no_grad():
        first = stateful(batch_to_ids(SENTENCES[:1]))["layers"][-1]
        torch.testing.assert_close(first, stateless(batch_to_ids(SENTENCES[:1]))["layers"][-1])
        # Rows 1 and 2 are new in the second call: they start warm, row 0 carries on.
        second = stateful(batch_to_ids(SENTENCES))["layers"][-1]
        expected = stateless(batch_to_ids(SENTENCES))["layers"][-1]
        torch.testing.assert_close(second[1:], expected[1:], atol=1e-6, rtol=0)
        assert not torch.allclose(second[0], expected[0])
