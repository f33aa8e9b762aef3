"""The character CNN: character embeddings, convolutions, highway layers and projection."""

from __future__ import annotations

import torch
from torch import nn

from elmo_lm.cpu import matmul
from elmo_lm.cpu.path import may_read_on_host
from elmo_lm.formats.characters import PADDING_CHAR
from elmo_lm.formats.options import BiLMOptions

# Char ids arrive +1-shifted: row 0 of the embedding is batch padding, row PAD_ID the pad character.
PAD_ID = PADDING_CHAR + 1
N_CHAR_ROWS = 262


class Highway(nn.Module):
    """``y = g * relu(x W_t + b_t) + (1 - g) * x`` with ``g = sigmoid(x W_c + b_c)``.

    Weights are kept in the weights file's ``x @ W`` layout, transform and carry side by side so
    that one matmul computes both.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.empty(dim, 2 * dim))  # [W_transform | W_carry]
        self.bias = nn.Parameter(torch.empty(2 * dim))
        nn.init.normal_(self.weight, std=(1.0 / dim) ** 0.5)
        with torch.no_grad():
            self.bias.zero_()
            self.bias[dim:].fill_(-2.0)  # carry gate starts mostly closed: y ~ x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = matmul.linear(x, self.weight, self.bias)  # (n, 2F)
        transform, gate = z.split(self.dim, dim=-1)
        gate = torch.sigmoid(gate)
        return x + gate * (torch.relu(transform) - x)


class CharCNN(nn.Module):
    """Token ids (+1-shifted characters) to context-independent token embeddings.

    The convolutions are computed as matmuls over character windows. Windows that lie wholly in
    the padding after the longest word of the batch all have the same value, so that value is
    computed once instead of at every such position: the result is the same as the VALID
    convolution over all ``max_characters_per_token`` positions.
    """

    MAX_LENGTH_GROUPS = 4
    MIN_GROUP_SIZE = 64
    # Below this many convolution multiply-adds per token (at full length), grouping by length
    # saves less than its extra operations cost: one group for the ``tiny`` shape (8.5k), four
    # for ``mini`` (775k), as training steps timed on both shapes showed (docs/PERFORMANCE.md).
    MIN_GROUPING_MACS = 1 << 16

    def __init__(self, options: BiLMOptions):
        super().__init__()
        cnn = options.char_cnn
        self.max_chars = cnn.max_characters_per_token
        self.char_dim = cnn.embedding.dim
        self.filters = [tuple(f) for f in cnn.filters]
        self.activation = torch.relu if cnn.activation == "relu" else torch.tanh
        n_filters = options.n_filters
        # Row 0 stays zero: it is the id of batch padding, which the original tools prepend.
        self.char_embed = nn.Embedding(N_CHAR_ROWS, self.char_dim, padding_idx=0)
        nn.init.uniform_(self.char_embed.weight[1:], -1.0, 1.0)
        # Conv weights in the weights file's layout flattened to (width * char_dim, n): row
        # tap * char_dim + c multiplies character tap of the window, embedding channel c.
        self.conv_weights = nn.ParameterList()
        self.conv_biases = nn.ParameterList()
        # The original's initialisers: uniform in +-0.05 for relu filters, normal with std
        # sqrt(1 / (width * char_dim)) for tanh ones; biases at zero.
        for width, num in self.filters:
            fan_in = width * self.char_dim
            if cnn.activation == "relu":
                weight = torch.empty(fan_in, num).uniform_(-0.05, 0.05)
            else:
                weight = torch.randn(fan_in, num) * fan_in**-0.5
            self.conv_weights.append(nn.Parameter(weight))
            self.conv_biases.append(nn.Parameter(torch.zeros(num)))
        self.highways = nn.ModuleList(Highway(n_filters) for _ in range(cnn.n_highway))
        self.conv_macs = sum(
            (self.max_chars - width + 1) * width * self.char_dim * num
            for width, num in self.filters
        )  # per token, over all positions
        proj = options.lstm.projection_dim
        # As in the original tools, no projection when the filters total projection_dim.
        self.proj_weight = self.proj_bias = None
        if options.cnn_projection:
            self.proj_weight = nn.Parameter(torch.randn(n_filters, proj) * n_filters**-0.5)
            self.proj_bias = nn.Parameter(torch.zeros(proj))
        self.output_dim = proj
        # (starts, F) True where a window start is past the filter's last VALID start, built
        # once so that a forward only slices it (no host-to-device copy); None: never needed.
        last = [self.max_chars - width for width, _ in self.filters]  # last start per filter
        n_starts = self.max_chars - self.min_width + 1
        mask = None
        if n_starts - 1 > min(last):
            limits = torch.cat(
                [torch.full((num,), lim) for (_, num), lim in zip(self.filters, last)]
            )
            mask = torch.arange(n_starts)[:, None] > limits[None, :]
        self.register_buffer("_past_end_mask", mask, persistent=False)
        # Where each entry of the stacked filters (_stacked_filters) comes from in the filters
        # flattened one after another and a zero after them: one gather makes the stack.
        rows, offset, column = self.max_width * self.char_dim, 0, 0
        stacked = torch.full((rows, n_filters), -1, dtype=torch.long)
        for width, num in self.filters:
            taps = width * self.char_dim
            stacked[:taps, column : column + num] = offset + torch.arange(taps * num).view(
                taps, num
            )
            offset, column = offset + taps * num, column + num
        stacked[stacked < 0] = offset  # the zero
        self.register_buffer("_filter_index", stacked.view(-1), persistent=False)
        self.register_buffer("_zero", torch.zeros(1), persistent=False)
        self._min_last_start = min(last)

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        """(..., C) long -> (..., projection_dim). All-zero rows give unspecified vectors.

        ``C`` is at most ``max_characters_per_token``; with fewer columns the missing ones are
        padding characters (the loader's ``tokens``, cut at its ``C_cap``): the result is that of
        the full-width ids.
        """
        lead = char_ids.shape[:-1]
        ids = char_ids.reshape(-1, char_ids.shape[-1])
        if not 1 <= ids.shape[-1] <= self.max_chars:
            raise ValueError(
                f"char ids have {ids.shape[-1]} characters per token, the model expects at most "
                f"{self.max_chars}"
            )
        shared: dict[str, torch.Tensor] = {}  # the stacked filters, shared by the groups
        if not may_read_on_host(ids):
            # An accelerator: every token given, windows up to its width (a Python int: the
            # shape), so that shapes follow only the shapes of the input.
            return self._finish(self._convolve(ids, ids.shape[-1], shared)).reshape(*lead, -1)
        # Characters of each token that are not padding: begin marker, bytes, end marker.
        n_chars = ((ids != PAD_ID) & (ids != 0)).sum(1)
        # Tokens in groups of similar length, so that each group's windows stop at its longest.
        order = n_chars.argsort()
        sorted_chars = n_chars[order].tolist()
        n = len(sorted_chars)
        n_groups = max(1, min(self.MAX_LENGTH_GROUPS, n // self.MIN_GROUP_SIZE))
        if self.conv_macs < self.MIN_GROUPING_MACS:
            n_groups = 1
        if n_groups == 1:
            x = self._convolve(ids, max(1, sorted_chars[-1]), shared)  # (n, n_filters)
        else:
            bounds = [round(k * n / n_groups) for k in range(n_groups + 1)]
            pieces = [
                self._convolve(ids[order[a:b]], max(1, sorted_chars[b - 1]), shared)
                for a, b in zip(bounds[:-1], bounds[1:])
            ]
            # back in input order; index_select's backward is one index_add_
            x = torch.cat(pieces).index_select(0, order.argsort())  # (n, n_filters)
        return self._finish(x).reshape(*lead, -1)

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        """The highways and the projection of the pooled filters (n, n_filters)."""
        for highway in self.highways:
            x = highway(x)
        if self.proj_weight is not None:
            x = matmul.linear(x, self.proj_weight, self.proj_bias)  # (n, projection_dim)
        return x

    def _convolve(self, ids: torch.Tensor, n_used: int, shared: dict) -> torch.Tensor:
        """Activated max-pooled convolutions of tokens whose characters end by ``n_used``.

        All filters run in one matmul: each window holds ``max_width`` characters, and a
        narrower filter's weight is zero on the taps past its width (``_stacked_filters``,
        computed once per batch and kept in ``shared`` for its groups). Windows start at
        positions ``0 .. n_used``: those before ``n_used`` touch a used character, the one at
        ``n_used`` holds padding only and stands for every later window (all have its value).
        """
        if "weight" not in shared:
            shared["weight"], shared["bias"] = self._stacked_filters()
        weight, bias = shared["weight"], shared["bias"]
        width, dim = self.max_width, self.char_dim
        n_starts = min(n_used + 1, self.max_chars - self.min_width + 1)
        chars = _CharLookup.apply(ids[:, :n_used], self.char_embed.weight)  # (n, n_used, D)
        n = chars.shape[0]
        pad = self.char_embed.weight[PAD_ID].expand(n, n_starts + width - 1 - n_used, dim)
        chars = torch.cat([chars, pad], dim=1)
        windows = chars.unfold(1, width, 1).transpose(2, 3).reshape(n * n_starts, width * dim)
        conv = matmul.linear(windows, weight, bias).view(n, n_starts, -1)  # (n, starts, F)
        # A filter's VALID windows start at most at max_chars - its width: mask the rest.
        past_end = self._past_end(n_starts)
        if past_end is not None:
            conv = conv.masked_fill(past_end, float("-inf"))
        return self.activation(_MaxOverStarts.apply(conv))  # (n, F)

    @property
    def max_width(self) -> int:
        return max(width for width, _ in self.filters)

    @property
    def min_width(self) -> int:
        return min(width for width, _ in self.filters)

    def _stacked_filters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All filters as one (max_width * char_dim, n_filters) weight and (n_filters,) bias;
        rows past a filter's own taps are zero."""
        rows = self.max_width * self.char_dim
        flat = torch.cat(
            [*(w.reshape(-1) for w in self.conv_weights), self._zero.to(self.conv_weights[0].dtype)]
        )
        weight = flat.index_select(0, self._filter_index).view(rows, -1)
        return weight, torch.cat(list(self.conv_biases))

    def _past_end(self, n_starts: int) -> torch.Tensor | None:
        """(n_starts, F) True where a window start is past the filter's last VALID start: a
        slice of the mask built at init, on the module's device."""
        if n_starts - 1 <= self._min_last_start:
            return None
        return self._past_end_mask[:n_starts]


class _MaxOverStarts(torch.autograd.Function):
    """``x.max(dim=1).values`` for (n, starts, F): the gradient goes to the first maximum, as
    TF's max_pool gradient does. Computed by ``max_pool2d`` on the channels-last view, an
    order of magnitude faster on the CPU than ``max`` with indices (docs/PERFORMANCE.md)."""

    @staticmethod
    def forward(ctx, x):
        n, starts, width = x.shape
        channels_last = x.view(n, 1, starts, width).permute(0, 3, 1, 2)  # (n, F, 1, starts)
        values, index = nn.functional.max_pool2d(channels_last, (1, starts), return_indices=True)
        ctx.save_for_backward(index.view(n, 1, width))
        ctx.starts = starts
        return values.view(n, width)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        n, _, width = index.shape
        d_x = grad.new_zeros(n, ctx.starts, width)
        return d_x.scatter_(1, index, grad.unsqueeze(1))


class _CharLookup(torch.autograd.Function):
    """``F.embedding(ids, weight, padding_idx=0)``: the rows of ``ids``, with row 0 (batch
    padding) getting no gradient. Its backward is one ``index_add_``, several times faster on
    the CPU than embedding's (docs/PERFORMANCE.md)."""

    @staticmethod
    def forward(ctx, ids, weight):
        ctx.save_for_backward(ids)
        ctx.n_rows = weight.shape[0]
        return torch.index_select(weight, 0, ids.reshape(-1)).view(*ids.shape, weight.shape[1])

    @staticmethod
    def backward(ctx, grad):
        (ids,) = ctx.saved_tensors
        d_weight = grad.new_zeros(ctx.n_rows, grad.shape[-1])
        d_weight.index_add_(0, ids.reshape(-1), grad.reshape(-1, grad.shape[-1]))
        d_weight[0] = 0.0  # padding_idx
        return None, d_weight
