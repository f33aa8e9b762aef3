"""The biLM's LSTMs: projected, clipped LSTM layers, both directions computed together (or the
forward direction alone, for a forward LM: ``options.bidirectional`` false)."""

from __future__ import annotations

import math

import torch
from torch import nn

from elmo_lm.cpu import kernels, matmul
from elmo_lm.formats.options import BiLMOptions
from elmo_lm.model import cell

# (h, c): h (n_layers, D, batch, projection_dim), c (n_layers, D, batch, dim); direction 0 is
# forward, 1 backward; D = 2 (D = 1 for a forward LM alone).
LstmState = tuple[torch.Tensor, torch.Tensor]


def glorot_uniform(d: int, fan_in: int, fan_out: int) -> torch.Tensor:
    """(d, fan_in, fan_out) drawn uniformly from +-sqrt(6 / (fan_in + fan_out)), TensorFlow's
    ``glorot_uniform_initializer`` of each (fan_in, fan_out) matrix."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return torch.empty(d, fan_in, fan_out).uniform_(-limit, limit)


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout: each element kept with probability 1 - p and scaled by 1 / (1 - p).

    The same law as ``nn.functional.dropout``, drawn from one uniform per element: on the CPU
    torch's ``bernoulli_`` (which that function uses) is slower than ``rand_like``
    (docs/PERFORMANCE.md).
    """
    if p <= 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    return x * ((torch.rand_like(x) >= p) * (1.0 / (1.0 - p)))


class ElmoLstm(nn.Module):
    """A stack of projected LSTM layers for the forward and the backward LM.

    Per layer and direction, the weights file's cell: ``z = [x, h] @ W_0 + B`` with gate blocks
    ``i, j, f, o``; ``c = sigmoid(f + 1) * c + sigmoid(i) * tanh(j)``, clipped to ``cell_clip``;
    ``h = (sigmoid(o) * tanh(c)) @ W_P_0``, clipped to ``proj_clip``. With skip connections,
    layers after the first add their input to their output (the state keeps the plain ``h``).
    As in the original tools, a cell with ``projection_dim == dim`` has no ``W_P_0`` and no
    ``proj_clip``: ``h = sigmoid(o) * tanh(c)``.

    The two directions run in the same batched matmuls (the backward input arrives already
    reversed, so both read left to right). Rows of different lengths are packed: rows are sorted
    by length and each step computes only the rows still running, so padding costs nothing.
    A forward LM alone has one direction (``n_directions``, the leading axis of every weight,
    input and state); it runs on the torch path (the native kernels pair two directions).
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
        self.dropout_p = options.dropout  # the rate; dropout() below is the function
        self.n_directions = d = options.n_directions
        # Under bfloat16 autocast (or with bfloat16 inputs), on the torch and accelerator paths
        # (NativeLayer keeps float32): the recurrent and projection products in bfloat16, the
        # cell state and gate arithmetic in float32. False: the whole recurrence in float32.
        # Set it after construction.
        self.bf16_recurrence = False
        p, h = self.proj_dim, self.dim
        # Per layer, the weights file's layout with a leading direction axis.
        self.weights = nn.ParameterList()  # (D, P + P, 4H)   W_0
        self.biases = nn.ParameterList()  # (D, 4H)           B (without the forget bias of 1)
        self.projections = nn.ParameterList()  # (D, H, P)    W_P_0; empty when P == H
        # The original's initialisers: TensorFlow's LSTMCell kernels take the variable scope's
        # default, Glorot uniform over (P + P, 4H) and (H, P); biases start at zero.
        for _ in range(self.n_layers):
            self.weights.append(nn.Parameter(glorot_uniform(d, 2 * p, 4 * h)))
            self.biases.append(nn.Parameter(torch.zeros(d, 4 * h)))
            if options.lstm_projection:
                self.projections.append(nn.Parameter(glorot_uniform(d, h, p)))
        forget = torch.zeros(4 * h)
        forget[2 * h : 3 * h] = 1.0
        self.register_buffer("_forget_bias", forget, persistent=False)

    def zero_state(self, batch_size: int, like: torch.Tensor) -> LstmState:
        h = like.new_zeros(self.n_layers, self.n_directions, batch_size, self.proj_dim)
        c = like.new_zeros(self.n_layers, self.n_directions, batch_size, self.dim)
        return h, c

    def forward(
        self,
        inputs: torch.Tensor,
        state: LstmState | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], LstmState]:
        """Runs both directions over their inputs.

        Args:
            inputs: (D, batch, time, P), direction 1 already in reading order (reversed text).
            state: initial (h, c), zeros when None.
            lengths: (batch,) steps that count per row; the returned state is each row's state
                after its last counted step, and outputs past it are zero. None: all count.

        Returns:
            Each layer's output (D, batch, time, P) (after the skip connection), and the state.
        """
        d, batch, time, p = inputs.shape
        if state is None:
            state = self.zero_state(batch, inputs)
        if lengths is None:
            order = None
            batch_sizes = [batch] * time
            # Time-major packed: step t is positions t * B .. (t + 1) * B - 1.
            x = inputs.transpose(1, 2).reshape(d, time * batch, p)
        else:
            lengths, order = lengths.sort(descending=True)
            inputs = inputs[:, order]
            state = (state[0][:, :, order], state[1][:, :, order])
            steps = torch.arange(time, device=inputs.device)
            running = steps[:, None] < lengths[None, :]  # (T, B), rows sorted: a prefix per step
            batch_sizes = running.sum(1).tolist()
            x = inputs.transpose(1, 2)[:, running]  # (D, n_positions, P), time-major packed
        outputs, h_out, c_out = [], [], []
        for layer in range(self.n_layers):
            if self.training and self.dropout_p > 0:
                x = dropout(x, self.dropout_p)
            out, h, c = self._layer(layer, x, state[0][layer], state[1][layer], batch_sizes)
            if self.use_skip_connections and layer > 0:
                out = out + x
            outputs.append(out)
            h_out.append(h)
            c_out.append(c)
            x = out
        h, c = torch.stack(h_out), torch.stack(c_out)
        if order is None:
            outputs = [o.view(d, time, batch, p).transpose(1, 2) for o in outputs]
        else:
            unsort = order.argsort()
            outputs = [self._unpack(o, running, batch, time)[:, unsort] for o in outputs]
            h, c = h[:, :, unsort], c[:, :, unsort]
        return outputs, (h, c)

    @staticmethod
    def _unpack(packed: torch.Tensor, running: torch.Tensor, batch: int, time: int) -> torch.Tensor:
        """(D, n_positions, P) time-major packed -> (D, batch, time, P), zeros past each row's end."""
        out = packed.new_zeros(packed.shape[0], time, batch, packed.shape[-1])
        out[:, running] = packed
        return out.transpose(1, 2)

    def _layer(self, layer, x, h, c, batch_sizes):
        """One layer, both directions, over packed steps.

        x: (2, n_positions, P) time-major packed; h (2, B, P), c (2, B, H) for the sorted rows.
        Returns the packed output (2, n_positions, P) and each row's final h and c.
        """
        p = x.shape[-1]
        weight = self.weights[layer]
        proj = self.projections[layer] if len(self.projections) else None
        clips = self.cell_clip, self.proj_clip
        if self.n_directions == 2 and _runs_native(x):
            bias = self.biases[layer] + self._forget_bias  # (2, 4H)
            return NativeLayer.apply(x, weight, bias, h, c, proj, batch_sizes, *clips)
        w_in, w_rec = weight[:, :p], weight[:, p:]  # (D, P, 4H) each
        bias = (self.biases[layer] + self._forget_bias).unsqueeze(1)  # (D, 1, 4H)
        # (D, n_positions, 4H): the inputs' part of every step at once
        if matmul.fits_onednn(x[0], w_in[0]):
            z = [matmul.linear(x[d], w_in[d], bias[d, 0]) for d in range(self.n_directions)]
        else:  # small: one batched product for both directions
            z = list(torch.baddbmm(bias, x, w_in))
        z_fwd, z_bwd = z[0], (z[1] if len(z) > 1 else None)
        low = torch.bfloat16 if self._bf16_products(x) else None
        return LstmSteps.apply(z_fwd, z_bwd, h, c, w_rec, proj, batch_sizes, *clips, low)

    def _bf16_products(self, x: torch.Tensor) -> bool:
        """Whether ``LstmSteps`` runs its products in bfloat16 (``bf16_recurrence``)."""
        if not self.bf16_recurrence:
            return False
        device = x.device.type
        if torch.is_autocast_enabled(device):
            return torch.get_autocast_dtype(device) == torch.bfloat16
        return x.dtype == torch.bfloat16


class LstmSteps(torch.autograd.Function):
    """The recurrent steps of one layer (both directions), with a hand-written backward.

    A step is four operations each way, whatever the shape: forward the recurrent product
    (with the input contributions added), the fused cell (``cell.lstm_cell``), the projection
    and its clip; backward the clip's mask, the projection's gradient product, the fused cell
    gradient (``cell.lstm_cell_backward``) and the recurrent gradient product. On a GPU each is
    a kernel launch. Everything that does not depend on the gradient arriving from later steps
    is worked out before the loop, and each pass writes its steps' results into lists, joined
    once after it (no writes into views: ``torch.compile`` traces the steps as they are).
    Backward then computes the recurrent and projection weight gradients as one matmul over all
    steps, instead of one small matmul per step.

    These are torch operations, for GPUs, ``torch.compile``, the torch and accelerator paths
    (``ELMO_LM_PATH``) and where ``kernels.c`` cannot be built; on the native path
    ``NativeLayer`` does the same work in C.

    Under autocast (mixed precision) the steps run in float32: the recurrence and its clipping
    stay exact, only the large input matmul before them runs in low precision. With ``low``
    (``ElmoLstm.bf16_recurrence``) the recurrent and projection products, and the outputs, are
    of that dtype instead, while the cell state and the gate arithmetic stay float32.

    Inputs: z_fwd and z_bwd (N, 4H), each direction's time-major packed input contributions
    (bias and forget bias in), ``z_bwd`` None for a forward LM alone (D = 1, every (2, ...)
    below then (1, ...)); h (2, B, P) and c (2, B, H) initial states of the rows sorted by
    length; w_rec (2, P, 4H); proj (2, H, P), or None for no projection (and no proj_clip);
    batch_sizes, the running rows per step; the clips; low, the products' dtype or None.
    Returns the packed outputs (2, N, P) and each row's final h and c.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(ctx, z_fwd, z_bwd, h, c, w_rec, proj, batch_sizes, cell_clip, proj_clip, low=None):
        ctx.batch_sizes, ctx.clips = batch_sizes, (cell_clip, proj_clip)
        h_dtype = h.dtype
        ctx.one_direction = z_bwd is None
        z_in = z_fwd[None] if z_bwd is None else torch.stack([z_fwd, z_bwd])  # (2, N, 4H)
        if low is not None:  # the products in low precision, the cell in float32
            z_in, h, w_rec, c = z_in.to(low), h.to(low), w_rec.to(low), c.float()
            proj = None if proj is None else proj.to(low)
        h0, c0 = h, c
        acts, cells, tanh_cells, pre_proj, outs, done_h, done_c = [], [], [], [], [], [], []
        start = 0
        for n in batch_sizes:
            if n < h.shape[1]:  # the rows past n have ended: their state is final
                done_h.append(h[:, n:])
                done_c.append(c[:, n:])
                h, c = h[:, :n], c[:, :n]
            a = matmul.bmm(h, w_rec, z_in[:, start : start + n])  # (2, n, 4H): i, j, f, o
            start += n
            gates, c, tanh_c, m = cell.lstm_cell(a, c, cell_clip)  # (2, n, 4H), (2, n, H) x 3
            h = m
            if proj is not None:
                h = matmul.bmm(m, proj)  # (2, n, P)
                if proj_clip is not None:
                    h = h.clamp(-proj_clip, proj_clip)
            acts.append(gates)
            cells.append(c)
            tanh_cells.append(tanh_c)
            pre_proj.append(m)
            outs.append(h)
        # Rows ended in order of decreasing index: put them back in row order.
        if done_h:
            h, c = (
                torch.cat([h, *reversed(done_h)], dim=1),
                torch.cat([c, *reversed(done_c)], dim=1),
            )
        h_final, c_final = h.to(h_dtype), c
        out = torch.cat(outs, dim=1)  # (2, N, P)
        # (2, N, 4H) the gates after their activations; (2, N, H) c, tanh(c) and m
        saved = [torch.cat(steps, dim=1) for steps in (acts, cells, tanh_cells)]
        saved.append(None if proj is None else torch.cat(pre_proj, dim=1))
        ctx.save_for_backward(h0, c0, w_rec, proj, out, *saved)
        return out, h_final, c_final

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, d_out, d_h_final, d_c_final):
        h0, c0, w_rec, proj, out, acts, cells, tanh_c, pre_proj = ctx.saved_tensors
        cell_clip, proj_clip = ctx.clips
        sizes = ctx.batch_sizes
        starts = _step_starts(sizes)
        low = out.dtype  # the products' dtype
        d_out = d_out.to(low)  # (2, N, P)
        proj_keep = None  # (2, N, P): where the projection's clip lets the gradient through
        if proj is not None and proj_clip is not None:
            proj_keep = (out.abs() < proj_clip).to(low)
            d_out = d_out * proj_keep
        d_h = d_h_final.to(low)  # (2, B, P): gradient reaching each row's h from later steps
        d_c = d_c_final.to(cells.dtype)  # (2, B, H)
        w_rec_t = w_rec.transpose(1, 2)
        proj_t = None if proj is None else proj.transpose(1, 2)
        d_zs, d_hs = [], []  # per step, last first: (2, n, 4H) and (2, n, P)
        for t in range(len(sizes) - 1, -1, -1):
            n, s = sizes[t], starts[t]
            step = slice(s, s + n)
            if proj is None:
                dm = d_out[:, step] + d_h[:, :n]  # (2, n, H)
            else:
                if proj_keep is None:
                    dh = d_out[:, step] + d_h[:, :n]
                else:
                    dh = torch.addcmul(d_out[:, step], d_h[:, :n], proj_keep[:, step])
                d_hs.append(dh)  # (2, n, P)
                dm = matmul.bmm(dh, proj_t)  # (2, n, H)
            c_prev = c0[:, :n] if t == 0 else cells[:, starts[t - 1] : starts[t - 1] + n]
            dz, dc = cell.lstm_cell_backward(
                dm, d_c[:, :n], acts[:, step], cells[:, step], tanh_c[:, step], c_prev, cell_clip
            )
            d_zs.append(dz)  # (2, n, 4H)
            d_h_rec = matmul.bmm(dz, w_rec_t)  # (2, n, P)
            if n < d_h.shape[1]:  # rows past n end before step t: theirs wait for their steps
                d_h_rec, dc = torch.cat([d_h_rec, d_h[:, n:]], 1), torch.cat([dc, d_c[:, n:]], 1)
            d_h, d_c = d_h_rec, dc
        d_z_in = torch.cat(d_zs[::-1], dim=1)  # (2, N, 4H)
        d_h_proj = None if proj is None else torch.cat(d_hs[::-1], dim=1)  # (2, N, P)
        d_w_rec, d_proj = _weight_grads(h0, out, sizes, d_z_in, pre_proj, d_h_proj)
        d_z_bwd = None if ctx.one_direction else d_z_in[1]
        return d_z_in[0], d_z_bwd, d_h, d_c, d_w_rec, d_proj, None, None, None, None


def _runs_native(x: torch.Tensor) -> bool:
    """Whether a layer of input ``x`` runs as ``NativeLayer``: where ``kernels.c``'s kernels run
    (``kernels.usable``: the native path, not under compile), in float32, or in any precision
    under the CPU's autocast (``NativeLayer`` casts to float32)."""
    if x.dtype != torch.float32 and not torch.is_autocast_enabled("cpu"):
        return False
    return kernels.usable(x)


def _step_starts(sizes: list[int]) -> list[int]:
    starts = [0]
    for n in sizes[:-1]:
        starts.append(starts[-1] + n)
    return starts


def _final_rows(packed: torch.Tensor, first: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Each row's state after its last step, (2, B, .), from the packed per-step states
    (2, N, .); rows that never ran keep theirs from ``first`` (2, B, .). Rows are sorted by
    length: those past ``sizes[t + 1]`` end at step t."""
    starts = _step_starts(sizes)
    parts, running = [], 0
    for t in range(len(sizes) - 1, -1, -1):  # rows in increasing order
        n, s = sizes[t], starts[t]
        if n > running:
            parts.append(packed[:, s + running : s + n])
            running = n
    parts.append(first[:, running:])
    return torch.cat(parts, dim=1)


def _threads() -> int:
    """Threads for the two directions: two of torch's pool, unless it is told to use one."""
    return 2 if torch.get_num_threads() > 1 else 1


class NativeLayer(torch.autograd.Function):
    """One layer (both directions) on the CPU: the input products in oneDNN, then all steps of
    the recurrence, products and cells, in one call of ``kernels.c`` per pass, each direction
    on a thread of its own; the same results as ``LstmSteps`` after the input products, to
    float32 rounding.

    The backward pass gets the gradient of the whole ``W_0`` (2, 2P, 4H) in one product per
    direction, ``[x, h_prev].T @ dz``, where ``LstmSteps`` leaves autograd to add the input and
    recurrent halves of two slices.

    Inputs: x (2, N, P) time-major packed; weight (2, 2P, 4H); bias (2, 4H) with the forget
    bias in; h (2, B, P) and c (2, B, H) for the rows sorted by length; proj (2, H, P) or None;
    batch_sizes and the clips as ``LstmSteps``. Under autocast the layer runs in float32.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(ctx, x, weight, bias, h, c, proj, batch_sizes, cell_clip, proj_clip):
        sizes = batch_sizes
        p = x.shape[-1]
        x = x.contiguous()
        w_in = weight[:, :p]
        z_fwd, z_bwd = (matmul.addmm(bias[d], x[d], w_in[d]) for d in range(2))
        z_fwd, z_bwd = z_fwd.contiguous(), z_bwd.contiguous()
        h0, c0 = h.contiguous(), c.contiguous()
        proj = None if proj is None else proj.contiguous()
        sizes_t = torch.tensor(sizes, dtype=torch.int64)
        clips = cell_clip, proj_clip
        steps = kernels.lstm_steps_forward(
            z_fwd, z_bwd, h0, c0, weight[:, p:], proj, sizes_t, *clips, _threads()
        )
        if steps is None:
            raise RuntimeError("NativeLayer runs only where kernels.usable(x) holds")
        acts, cells, tanh_cells, pre_proj, out = steps
        ctx.batch_sizes, ctx.sizes_t, ctx.clips = sizes, sizes_t, (cell_clip, proj_clip)
        saved = (x, weight, h0, c0, proj, out, acts, cells, tanh_cells, pre_proj)
        ctx.save_for_backward(*saved)
        return out, _final_rows(out, h0, sizes), _final_rows(cells, c0, sizes)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, d_out, d_h_final, d_c_final):
        x, weight, h0, c0, proj, out, acts, cells, tanh_cells, pre_proj = ctx.saved_tensors
        sizes = ctx.batch_sizes
        p = out.shape[-1]
        d_h = d_h_final.contiguous().clone()  # (2, B, P): in, after the last steps; out, of h0
        d_c = d_c_final.contiguous().clone()  # (2, B, H)
        w_rec_t = weight[:, p:].transpose(1, 2).contiguous()  # (2, 4H, P)
        proj_t = None if proj is None else proj.transpose(1, 2).contiguous()  # (2, P, H)
        steps = kernels.lstm_steps_backward(
            *(d_out.contiguous(), d_h, d_c, w_rec_t, proj_t, c0),
            *((acts, cells, tanh_cells, out), ctx.sizes_t, *ctx.clips, _threads()),
        )
        if steps is None:
            raise RuntimeError("NativeLayer runs only where kernels.usable(x) holds")
        d_z, d_h_proj = steps  # (2, N, 4H), (2, N, P) or None
        d_x = None
        if ctx.needs_input_grad[0]:
            d_x = torch.stack([matmul.mm(d_z[d], weight[d, :p].t()) for d in range(2)])
        # [x, h before each step] (2, N, 2P): W_0's rows, inputs' then recurrent ones
        xh = torch.cat([x, _previous_rows(out, h0, sizes)], dim=-1)
        d_weight = matmul.bmm(xh.transpose(1, 2), d_z)
        d_proj = None if proj is None else matmul.bmm(pre_proj.transpose(1, 2), d_h_proj)
        return d_x, d_weight, d_z.sum(1), d_h, d_c, d_proj, None, None, None


def _previous_rows(out: torch.Tensor, h0: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """h before each step (2, N, P), packed like the outputs: h0 for the first step, else the
    previous step's output."""
    starts = _step_starts(sizes)
    return torch.cat(
        [h0[:, : sizes[0]]]
        + [out[:, starts[t - 1] : starts[t - 1] + sizes[t]] for t in range(1, len(sizes))],
        dim=1,
    )


def _weight_grads(h0, out, sizes, d_z_in, pre_proj, d_h_proj):
    """The recurrent and projection weight gradients, each one matmul over all steps:
    (2, P, 4H), and (2, H, P) or None without a projection (``pre_proj`` None)."""
    d_w_rec = matmul.bmm(_previous_rows(out, h0, sizes).transpose(1, 2), d_z_in)
    if pre_proj is None:
        return d_w_rec, None
    return d_w_rec, matmul.bmm(pre_proj.transpose(1, 2), d_h_proj)
