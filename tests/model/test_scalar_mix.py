"""ScalarMix: values computed by hand, layer norm over unmasked positions, and training."""

import pytest
import torch

from elmo_lm.model.scalar_mix import ScalarMix


def _layers(n=3, shape=(2, 5, 4)):
    torch.manual_seed(0)
    return [torch.randn(*shape) for _ in range(n)]


def test_default_is_the_average():
    layers = _layers()
    mix = ScalarMix(3)
    torch.testing.assert_close(mix(layers), sum(layers) / 3)


def test_weights_and_gamma():
    layers = _layers()
    mix = ScalarMix(3, initial_scalar_parameters=[1.0, 2.0, 3.0])
    with torch.no_grad():
        mix.gamma.fill_(0.5)
    w = torch.softmax(torch.tensor([1.0, 2.0, 3.0]), 0)
    expected = 0.5 * (w[0] * layers[0] + w[1] * layers[1] + w[2] * layers[2])
    torch.testing.assert_close(mix(layers), expected)
    torch.testing.assert_close(mix(torch.stack(layers)), expected)


def test_layer_norm_ignores_masked_positions():
    layers = _layers(2)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    mix = ScalarMix(2, do_layer_norm=True)
    out = mix(layers, mask)
    expected = 0
    for layer in layers:
        values = layer[mask]  # (n_unmasked, dim)
        expected = expected + 0.5 * (layer - values.mean()) / values.var(unbiased=False).sqrt()
    torch.testing.assert_close(out, expected)
    # what sits at padded positions does not change the real ones
    changed = [layer.clone() for layer in layers]
    for layer in changed:
        layer[0, 3:] = 100.0
    torch.testing.assert_close(mix(changed, mask)[mask], out[mask])


def test_layer_norm_needs_mask():
    with pytest.raises(ValueError, match="mask"):
        ScalarMix(2, do_layer_norm=True)(_layers(2))


def test_wrong_number_of_layers():
    with pytest.raises(ValueError, match="built for 2 layers and got 3"):
        ScalarMix(n_representations=2)(_layers(3))
    with pytest.raises(ValueError, match="one value per layer"):
        ScalarMix(2, initial_scalar_parameters=[0.0])


def test_gradients_reach_the_weights_and_penalty():
    layers = _layers()
    mix = ScalarMix(3, l2_coef=0.1, initial_scalar_parameters=[1.0, 0.0, -1.0])
    torch.testing.assert_close(mix.penalty(), torch.tensor(0.2))
    loss = mix(layers).pow(2).sum() + mix.penalty()
    loss.backward()
    assert mix.scalar_parameters.grad is not None and mix.scalar_parameters.grad.abs().sum() > 0
    assert mix.gamma.grad is not None and mix.gamma.grad.abs() > 0


def test_not_trainable():
    mix = ScalarMix(3, trainable=False)
    assert not any(p.requires_grad for p in mix.parameters())


def test_training_moves_the_weight_to_the_layer_that_fits():
    """Fitting the mix to one of its layers puts the softmax weight on that layer and gamma
    near 1: the gradients point the right way, not only exist."""
    torch.manual_seed(0)
    layers = [torch.randn(4, 6, 8) for _ in range(3)]
    target = layers[1]
    mix = ScalarMix(3)
    optimizer = torch.optim.SGD(mix.parameters(), lr=0.5)
    first = None
    for _ in range(200):
        loss = (mix(layers) - target).pow(2).mean()
        first = float(loss) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = torch.softmax(mix.scalar_parameters.detach(), 0)
    assert weights.argmax() == 1 and weights[1] > 0.8, weights
    assert abs(float(mix.gamma) - 1.0) < 0.2 and float(loss) < 0.2 * first
