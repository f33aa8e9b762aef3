"""A learned weighted sum of the biLM's layers: ``gamma * sum_k softmax(s)_k * layer_k``.

This is the task-specific combination of the ELMo paper (Peters et al. 2018, eq. 1): the
downstream model learns one scalar per layer and a scale, and the biLM stays frozen.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ScalarMix(nn.Module):
    """Softmax-normalised weights over ``n_representations`` same-shape tensors, times ``gamma``.

    Args:
        n_representations: how many tensors are mixed (the biLM's ``n_representations``, L + 1).
        do_layer_norm: normalise each layer over its unmasked positions before mixing (the
            original tools' ``use_layer_norm``); needs the mask at call time.
        initial_scalar_parameters: starting values of the unnormalised weights; zeros (an
            equal average) by default.
        trainable: if False the weights and gamma are fixed.
        l2_coef: coefficient of :meth:`penalty`, an L2 penalty on the unnormalised weights
            that pulls the mix towards an average (the original tools' ``l2_coef``).
    """

    def __init__(
        self,
        n_representations: int,
        do_layer_norm: bool = False,
        initial_scalar_parameters: Sequence[float] | None = None,
        trainable: bool = True,
        l2_coef: float = 0.0,
    ) -> None:
        super().__init__()
        if initial_scalar_parameters is None:
            initial_scalar_parameters = [0.0] * n_representations
        if len(initial_scalar_parameters) != n_representations:
            raise ValueError(
                f"ScalarMix: {len(initial_scalar_parameters)} initial_scalar_parameters for "
                f"{n_representations} layers; give one value per layer"
            )
        self.n_representations = n_representations
        self.do_layer_norm = do_layer_norm
        self.l2_coef = l2_coef
        self.scalar_parameters = nn.Parameter(
            torch.tensor([float(v) for v in initial_scalar_parameters]), requires_grad=trainable
        )
        self.gamma = nn.Parameter(torch.tensor(1.0), requires_grad=trainable)

    def normalized_weights(self) -> torch.Tensor:
        """The mixing weights, (n_representations,), summing to one."""
        return torch.softmax(self.scalar_parameters, dim=0)

    def penalty(self) -> torch.Tensor:
        """``l2_coef * sum(s ** 2)``: add it to the downstream loss."""
        return self.l2_coef * (self.scalar_parameters**2).sum()

    def forward(
        self, layers: Sequence[torch.Tensor], mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mixes the layers.

        Args:
            layers: ``n_representations`` tensors (batch, time, dim), or a stacked
                (n_representations, batch, time, dim) tensor.
            mask: (batch, time) bool, True at real tokens; required with ``do_layer_norm``.

        Returns:
            (batch, time, dim).
        """
        if len(layers) != self.n_representations:
            raise ValueError(
                f"ScalarMix was built for {self.n_representations} layers and got {len(layers)}; "
                "build it with the biLM's n_representations"
            )
        weights = self.normalized_weights()
        if self.do_layer_norm:
            if mask is None:
                raise ValueError("ScalarMix(do_layer_norm=True) needs the mask of the positions")
            mask_f = mask.unsqueeze(-1).to(layers[0].dtype)  # (batch, time, 1)
            # every dimension of every unmasked token counts in the statistics
            n = (mask_f.sum() * layers[0].size(-1)).clamp(min=1.0)
            layers = [_masked_layer_norm(layer, mask_f, n) for layer in layers]
        mixed = sum(w * layer for w, layer in zip(weights, layers, strict=True))
        return self.gamma * mixed


def _masked_layer_norm(
    layer: torch.Tensor, mask_f: torch.Tensor, n: torch.Tensor, eps: float = 1e-12
) -> torch.Tensor:
    # one mean and variance per layer over the unmasked positions, as the original tools do
    masked = layer * mask_f  # (batch, time, dim)
    mean = masked.sum() / n
    variance = (((masked - mean) * mask_f) ** 2).sum() / n
    return (layer - mean) / torch.sqrt(variance + eps)
