"""The biLM's LSTMs: projected, clipped LSTM layers, both directions computed together."""

from __future__ import annotations

import torch
from torch import nn

from elmo_lm.options import BiLMOptions

# (h, c): h (n_layers, 2, batch, projection_dim), c (n_layers, 2, batch, dim); direction 0 is
# forward, 1 backward.
LstmState = tuple[torch.Tensor, torch.Tensor]


class ElmoLstm(nn.Module):
    """A stack of projected LSTM layers for the forward and the backward LM.

    Per layer and direction, the weights file's cell: ``z = [x, h] @ W_0 + B`` with gate blocks
    ``i, j, f, o``; ``c = sigmoid(f + 1) * c + sigmoid(i) * tanh(j)``, clipped to ``cell_clip``;
    ``h = (sigmoid(o) * tanh(c)) @ W_P_0``, clipped to ``proj_clip``. With skip connections,
    layers after the first add their input to their output (the state keeps the plain ``h``).
    The two directions run in the same batched matmuls; the backward input arrives already
    reversed, so both read left to right.
    """

    def __init__(self, options: BiLMOptions):
        super().__init__()
        lstm = options.lstm
        self.n_layers = lstm.n_layers
        self.dim = lstm.dim
        self.proj_dim = lstm.projection_dim
        self.cell_clip = lstm.cell_clip
        self.proj_clip = lstm.proj_clip
        self.use_skip_connections = lstm.use_skip_connections
        self.dropout = options.dropout
        p, h = self.proj_dim, self.dim
        # Per layer, weights file layout with a leading direction axis.
        self.weights = nn.ParameterList()  # (2, P + P, 4H)   W_0
        self.biases = nn.ParameterList()  # (2, 4H)           B (without the forget bias of 1)
        self.projections = nn.ParameterList()  # (2, H, P)    W_P_0
        for _ in range(self.n_layers):
            self.weights.append(nn.Parameter(torch.randn(2, 2 * p, 4 * h) * (2 * p) ** -0.5))
            self.biases.append(nn.Parameter(torch.zeros(2, 4 * h)))
            self.projections.append(nn.Parameter(torch.randn(2, h, p) * h**-0.5))

    def zero_state(self, batch_size: int, like: torch.Tensor) -> LstmState:
        h = like.new_zeros(self.n_layers, 2, batch_size, self.proj_dim)
        c = like.new_zeros(self.n_layers, 2, batch_size, self.dim)
        return h, c

    def forward(
        self,
        inputs: torch.Tensor,
        state: LstmState | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], LstmState]:
        """Runs both directions over their inputs.

        Args:
            inputs: (2, batch, time, P), direction 1 already in reading order (reversed text).
            state: initial (h, c), zeros when None.
            lengths: (batch,) steps that count per row; the returned state is each row's state
                after its last counted step. None: every step counts.

        Returns:
            Each layer's output (2, batch, time, P) (after the skip connection), and the state.
        """
        _, batch, time, _ = inputs.shape
        if state is None:
            state = self.zero_state(batch, inputs)
        active = None
        if lengths is not None and bool((lengths < time).any()):
            steps = torch.arange(time, device=inputs.device)
            active = (steps[:, None] < lengths[None, :]).view(time, 1, batch, 1)  # (T, 1, B, 1)
        outputs, h_out, c_out = [], [], []
        x = inputs
        for layer in range(self.n_layers):
            if self.training and self.dropout > 0:
                x = nn.functional.dropout(x, self.dropout, training=True)
            out, h, c = self._layer(layer, x, state[0][layer], state[1][layer], active)
            if self.use_skip_connections and layer > 0:
                out = out + x
            outputs.append(out)
            h_out.append(h)
            c_out.append(c)
            x = out
        return outputs, (torch.stack(h_out), torch.stack(c_out))

    def _layer(self, layer, x, h, c, active):
        """One layer, both directions: x (2, B, T, P) -> out (2, B, T, P), final h, c."""
        two, batch, time, p = x.shape
        weight, proj = self.weights[layer], self.projections[layer]
        bias = self.biases[layer]
        forget_bias = torch.zeros_like(bias)
        forget_bias[:, 2 * self.dim : 3 * self.dim] = 1.0
        w_in, w_rec = weight[:, :p], weight[:, p:]  # (2, P, 4H) each
        # Input contributions of all steps at once: (2, B*T, 4H) -> (T, 2, B, 4H).
        z_in = torch.baddbmm(
            (bias + forget_bias).unsqueeze(1), x.reshape(two, batch * time, p), w_in
        )
        z_in = z_in.view(two, batch, time, -1).permute(2, 0, 1, 3)
        dim = self.dim
        out = []
        for t in range(time):
            z = torch.baddbmm(z_in[t], h, w_rec)  # (2, B, 4H)
            sig = torch.sigmoid(z)
            c_new = sig[..., 2 * dim : 3 * dim] * c + sig[..., :dim] * torch.tanh(
                z[..., dim : 2 * dim]
            )
            if self.cell_clip is not None:
                c_new = c_new.clamp(-self.cell_clip, self.cell_clip)
            h_new = torch.bmm(sig[..., 3 * dim :] * torch.tanh(c_new), proj)  # (2, B, P)
            if self.proj_clip is not None:
                h_new = h_new.clamp(-self.proj_clip, self.proj_clip)
            if active is not None:
                h_new = torch.where(active[t], h_new, h)
                c_new = torch.where(active[t], c_new, c)
            h, c = h_new, c_new
            out.append(h)
        return torch.stack(out, dim=2), h, c
