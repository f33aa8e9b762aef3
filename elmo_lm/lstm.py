"""The biLM's LSTMs: projected, clipped LSTM layers, both directions computed together."""

from __future__ import annotations

import torch
from torch import nn

from elmo_lm import matmul, native
from elmo_lm.options import BiLMOptions

# (h, c): h (n_layers, 2, batch, projection_dim), c (n_layers, 2, batch, dim); direction 0 is
# forward, 1 backward.
LstmState = tuple[torch.Tensor, torch.Tensor]


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout: each element kept with probability 1 - p and scaled by 1 / (1 - p).

    The same law as ``nn.functional.dropout``, drawn from one uniform per element: on the CPU
    torch's ``bernoulli_`` (which that function uses) takes twice as long as ``rand_like``
    (0.37 against 0.17 ms for 82k elements).
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
        # Per layer, the weights file's layout with a leading direction axis.
        self.weights = nn.ParameterList()  # (2, P + P, 4H)   W_0
        self.biases = nn.ParameterList()  # (2, 4H)           B (without the forget bias of 1)
        self.projections = nn.ParameterList()  # (2, H, P)    W_P_0; empty when P == H
        for _ in range(self.n_layers):
            self.weights.append(nn.Parameter(torch.randn(2, 2 * p, 4 * h) * (2 * p) ** -0.5))
            self.biases.append(nn.Parameter(torch.zeros(2, 4 * h)))
            if options.lstm_projection:
                self.projections.append(nn.Parameter(torch.randn(2, h, p) * h**-0.5))
        forget = torch.zeros(4 * h)
        forget[2 * h : 3 * h] = 1.0
        self.register_buffer("_forget_bias", forget, persistent=False)

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
                after its last counted step, and outputs past it are zero. None: all count.

        Returns:
            Each layer's output (2, batch, time, P) (after the skip connection), and the state.
        """
        _, batch, time, p = inputs.shape
        if state is None:
            state = self.zero_state(batch, inputs)
        if lengths is None:
            order = None
            batch_sizes = [batch] * time
            # Time-major packed: step t is positions t * B .. (t + 1) * B - 1.
            x = inputs.transpose(1, 2).reshape(2, time * batch, p)
        else:
            lengths, order = lengths.sort(descending=True)
            inputs = inputs[:, order]
            state = (state[0][:, :, order], state[1][:, :, order])
            steps = torch.arange(time, device=inputs.device)
            running = steps[:, None] < lengths[None, :]  # (T, B), rows sorted: a prefix per step
            batch_sizes = running.sum(1).tolist()
            x = inputs.transpose(1, 2)[:, running]  # (2, n_positions, P), time-major packed
        outputs, h_out, c_out = [], [], []
        for layer in range(self.n_layers):
            if self.training and self.dropout > 0:
                x = dropout(x, self.dropout)
            out, h, c = self._layer(layer, x, state[0][layer], state[1][layer], batch_sizes)
            if self.use_skip_connections and layer > 0:
                out = out + x
            outputs.append(out)
            h_out.append(h)
            c_out.append(c)
            x = out
        h, c = torch.stack(h_out), torch.stack(c_out)
        if order is None:
            outputs = [o.view(2, time, batch, p).transpose(1, 2) for o in outputs]
        else:
            unsort = order.argsort()
            outputs = [self._unpack(o, running, batch, time)[:, unsort] for o in outputs]
            h, c = h[:, :, unsort], c[:, :, unsort]
        return outputs, (h, c)

    @staticmethod
    def _unpack(packed: torch.Tensor, running: torch.Tensor, batch: int, time: int) -> torch.Tensor:
        """(2, n_positions, P) time-major packed -> (2, batch, time, P), zeros past each row's end."""
        out = packed.new_zeros(2, time, batch, packed.shape[-1])
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
        w_in, w_rec = weight[:, :p], weight[:, p:]  # (2, P, 4H) each
        bias = (self.biases[layer] + self._forget_bias).unsqueeze(1)  # (2, 1, 4H)
        # (2, n_positions, 4H): the inputs' part of every step at once
        if matmul.fits_onednn(x[0], w_in[0]):
            z_fwd, z_bwd = (matmul.linear(x[d], w_in[d], bias[d, 0]) for d in range(2))
        else:  # small: one batched product for both directions
            z_fwd, z_bwd = torch.baddbmm(bias, x, w_in)
        clips = self.cell_clip, self.proj_clip
        return LstmSteps.apply(z_fwd, z_bwd, h, c, w_rec, proj, batch_sizes, *clips)


class LstmSteps(torch.autograd.Function):
    """The recurrent steps of one layer (both directions), with a hand-written backward.

    Forward keeps each step's gate activations; backward runs the steps in reverse and then
    computes the recurrent and projection weight gradients as one matmul over all steps, instead
    of one small matmul per step.

    On the CPU in float32, each step's elementwise work (both ways) is one C loop of
    ``kernels.c`` between the step's products (``_native_forward``, ``_native_backward``);
    elsewhere, or without a C compiler, torch operations do the same.

    Under autocast (mixed precision) the steps run in float32: the recurrence and its clipping
    stay exact, only the large input matmul before them runs in low precision.

    Inputs: z_fwd and z_bwd (N, 4H), each direction's time-major packed input contributions
    (bias and forget bias in); h (2, B, P) and c (2, B, H) initial states of the rows sorted by length; w_rec (2, P, 4H);
    proj (2, H, P), or None for no projection (and no proj_clip); batch_sizes, the running rows
    per step. Returns the packed outputs (2, N, P) and each row's final h and c.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(ctx, z_fwd, z_bwd, h, c, w_rec, proj, batch_sizes, cell_clip, proj_clip):
        ctx.batch_sizes, ctx.clips = batch_sizes, (cell_clip, proj_clip)
        lib = _native_kernels(z_fwd)
        ctx.native = lib is not None
        if lib is not None:
            return _native_forward(ctx, lib, z_fwd, z_bwd, h, c, w_rec, proj)
        z_in = torch.stack([z_fwd, z_bwd])
        dim = c.shape[-1]
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
            a[..., :dim].sigmoid_()
            a[..., dim : 2 * dim].tanh_()
            a[..., 2 * dim :].sigmoid_()
            c = torch.addcmul(a[..., 2 * dim : 3 * dim] * c, a[..., :dim], a[..., dim : 2 * dim])
            if cell_clip is not None:
                c.clamp_(-cell_clip, cell_clip)
            tanh_c = torch.tanh(c)
            m = a[..., 3 * dim :] * tanh_c  # (2, n, H)
            h = m
            if proj is not None:
                h = matmul.bmm(m, proj)  # (2, n, P)
                if proj_clip is not None:
                    h.clamp_(-proj_clip, proj_clip)
            acts.append(a)
            cells.append(c)
            tanh_cells.append(tanh_c)
            pre_proj.append(m)
            outs.append(h)
        # Rows ended in order of decreasing index: put them back in row order.
        h_final = torch.cat([h, *reversed(done_h)], dim=1)
        c_final = torch.cat([c, *reversed(done_c)], dim=1)
        out = torch.cat(outs, dim=1)
        ctx.acts, ctx.cells, ctx.tanh_cells, ctx.pre_proj = acts, cells, tanh_cells, pre_proj
        ctx.save_for_backward(h0, c0, w_rec, proj, out)
        return out, h_final, c_final

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, d_out, d_h_final, d_c_final):
        if ctx.native:
            return _native_backward(ctx, d_out, d_h_final, d_c_final)
        h0, c0, w_rec, proj, out = ctx.saved_tensors
        cell_clip, proj_clip = ctx.clips
        sizes = ctx.batch_sizes
        dim = c0.shape[-1]
        starts = _step_starts(sizes)
        # Every factor that does not depend on the gradient arriving from later steps, for all
        # steps at once (2, N, .): the loop below is then a few operations per step.
        acts = torch.cat(ctx.acts, dim=1)  # (2, N, 4H): i, j, f, o after their activations
        cells = torch.cat(ctx.cells, dim=1)  # (2, N, H)
        tanh_c = torch.cat(ctx.tanh_cells, dim=1)  # (2, N, H)
        c_prev = torch.cat(
            [c0[:, : sizes[0]]] + [ctx.cells[t - 1][:, : sizes[t]] for t in range(1, len(sizes))],
            dim=1,
        )  # (2, N, H): the cell before each step
        i, g, f, o = acts.split(dim, dim=-1)
        # d z = [dc, dc, dc, dm] * gates: the gate pre-activations' gradients
        gates = torch.cat(
            [g * i * (1 - i), i * (1 - g * g), c_prev * f * (1 - f), tanh_c * o * (1 - o)], dim=-1
        )
        dm_to_dc = o * (1 - tanh_c * tanh_c)  # (2, N, H)
        cell_keep = None if cell_clip is None else (cells.abs() < cell_clip).to(cells.dtype)
        proj_keep = None
        if proj is not None and proj_clip is not None:
            proj_keep = (out.abs() < proj_clip).to(out.dtype)  # (2, N, P)
        d_h = d_h_final.clone()  # (2, B, P): gradient reaching each row's h from later steps
        d_c = d_c_final.clone()  # (2, B, H)
        d_z_in = torch.empty_like(acts)  # (2, N, 4H)
        d_h_proj = torch.empty_like(out) if proj is not None else None  # (2, N, P)
        w_rec_t = w_rec.transpose(1, 2)
        proj_t = None if proj is None else proj.transpose(1, 2)
        for t in range(len(sizes) - 1, -1, -1):
            n, s = sizes[t], starts[t]
            step = slice(s, s + n)
            if proj is None:
                dm = dh = d_out[:, step] + d_h[:, :n]  # (2, n, H)
            else:
                dh = torch.add(d_out[:, step], d_h[:, :n], out=d_h_proj[:, step])
                if proj_keep is not None:
                    dh.mul_(proj_keep[:, step])
                dm = matmul.bmm(dh, proj_t)  # (2, n, H)
            dc = torch.addcmul(d_c[:, :n], dm, dm_to_dc[:, step])
            if cell_keep is not None:
                dc.mul_(cell_keep[:, step])
            dz = d_z_in[:, step]
            torch.mul(torch.cat([dc, dc, dc, dm], dim=-1), gates[:, step], out=dz)
            d_h[:, :n] = matmul.bmm(dz, w_rec_t)
            d_c[:, :n] = dc * f[:, step]
        pre_proj = None if proj is None else torch.cat(ctx.pre_proj, dim=1)  # (2, N, H)
        d_w_rec, d_proj = _weight_grads(h0, out, sizes, starts, d_z_in, pre_proj, d_h_proj)
        return d_z_in[0], d_z_in[1], d_h, d_c, d_w_rec, d_proj, None, None, None


def _native_kernels(z: torch.Tensor):
    """``kernels.c``'s kernels where they apply: float32 CPU tensors, not under compile."""
    if z.device.type != "cpu" or z.dtype != torch.float32:
        return None
    if torch.compiler.is_compiling():
        return None
    return native.kernels()


class _Rows:
    """Addresses of rows of a contiguous (2, N, width) or (N, width) float32 buffer, for the
    kernels: a slice costs a tensor, an address costs an addition."""

    def __init__(self, t: torch.Tensor):
        self.base, self.row, self.dir = t.data_ptr(), t.shape[-1] * 4, t.stride(0)

    def at(self, row: int) -> int:
        return self.base + row * self.row


def _step_starts(sizes: list[int]) -> list[int]:
    starts = [0]
    for n in sizes[:-1]:
        starts.append(starts[-1] + n)
    return starts


def _native_forward(ctx, lib, z_fwd, z_bwd, h, c, w_rec, proj):
    """LstmSteps.forward with each step's elementwise work in one kernel (``kernels.c``).

    The gates, cells, their tanh and the projection inputs go straight into (2, N, .) buffers
    that the backward pass reads as they are.
    """
    sizes = ctx.batch_sizes
    cell_clip, proj_clip = ctx.clips
    z_fwd, z_bwd = z_fwd.contiguous(), z_bwd.contiguous()
    h, c = h.contiguous(), c.contiguous()
    total, four_dim = z_fwd.shape
    dim = four_dim // 4
    h0, c0 = h, c
    acts = z_fwd.new_empty(2, total, four_dim)
    cells = z_fwd.new_empty(2, total, dim)
    tanh_cells = z_fwd.new_empty(2, total, dim)
    pre_proj = z_fwd.new_empty(2, total, dim) if proj is not None else None
    outs, done_h, done_c = [], [], []
    has_clip, clip = cell_clip is not None, float(cell_clip or 0.0)
    z_rows, act_rows, cell_rows = (_Rows(z_fwd), _Rows(z_bwd)), _Rows(acts), _Rows(cells)
    tanh_rows = _Rows(tanh_cells)
    m_rows = None if pre_proj is None else _Rows(pre_proj)
    start = 0
    for n in sizes:  # c: the cell before the step, rows of c0 and then of cells
        if n < h.shape[1]:  # the rows past n have ended: their state is final
            done_h.append(h[:, n:])
            done_c.append(c[:, n:])
            h, c = h[:, :n], c[:, :n]
        a = matmul.bmm(h, w_rec)  # (2, n, 4H): the recurrent part of i, j, f, o
        if m_rows is None:
            m = a.new_empty(2, n, dim)
            m_ptr, m_dir = m.data_ptr(), m.stride(0)
        else:
            m = pre_proj[:, start : start + n]
            m_ptr, m_dir = m_rows.at(start), m_rows.dir
        lib.elmo_lstm_forward(
            *(a.data_ptr(), z_rows[0].at(start), z_rows[1].at(start)),
            *(c.data_ptr(), c.stride(0)),
            *(act_rows.at(start), act_rows.dir),
            *(cell_rows.at(start), tanh_rows.at(start), cell_rows.dir),
            *(m_ptr, m_dir, n, dim, has_clip, clip),
        )
        h = m
        if proj is not None:
            h = matmul.bmm(m, proj)  # (2, n, P)
            if proj_clip is not None:
                h.clamp_(-proj_clip, proj_clip)
        outs.append(h)
        c = cells[:, start : start + n]
        start += n
    # Rows ended in order of decreasing index: put them back in row order.
    h_final = torch.cat([h, *reversed(done_h)], dim=1)
    c_final = torch.cat([c, *reversed(done_c)], dim=1)
    out = torch.cat(outs, dim=1)
    ctx.save_for_backward(h0, c0, w_rec, proj, out, acts, cells, tanh_cells, pre_proj)
    return out, h_final, c_final


def _native_backward(ctx, d_out, d_h_final, d_c_final):
    """LstmSteps.backward with each step's elementwise work in one kernel (``kernels.c``)."""
    h0, c0, w_rec, proj, out, acts, cells, tanh_cells, pre_proj = ctx.saved_tensors
    lib = native.kernels()
    cell_clip, proj_clip = ctx.clips
    sizes = ctx.batch_sizes
    starts = _step_starts(sizes)
    dim = cells.shape[-1]
    width = out.shape[-1]
    d_out = d_out.contiguous()
    d_h = d_h_final.contiguous().clone()  # (2, B, P): gradient reaching each row's h later
    d_c = d_c_final.contiguous().clone()  # (2, B, H)
    d_z_in = torch.empty_like(acts)  # (2, N, 4H)
    d_h_proj = torch.empty_like(out) if proj is not None else None  # (2, N, P)
    w_rec_t = w_rec.transpose(1, 2)
    proj_t = None if proj is None else proj.transpose(1, 2)
    has_cell_clip, c_clip = cell_clip is not None, float(cell_clip or 0.0)
    has_proj_clip = proj is not None and proj_clip is not None
    p_clip = float(proj_clip or 0.0)
    d_out_rows, out_rows, act_rows, cell_rows = _Rows(d_out), _Rows(out), _Rows(acts), _Rows(cells)
    tanh_rows, dz_rows, c0_rows = _Rows(tanh_cells), _Rows(d_z_in), _Rows(c0)
    grad_rows = None if d_h_proj is None else _Rows(d_h_proj)
    for t in range(len(sizes) - 1, -1, -1):
        n, s = sizes[t], starts[t]
        # the gradient reaching the step's output h (after the projection's clip)
        if grad_rows is None:
            grad = out.new_empty(2, n, width)
            grad_ptr, grad_dir = grad.data_ptr(), grad.stride(0)
        else:
            grad = d_h_proj[:, s : s + n]
            grad_ptr, grad_dir = grad_rows.at(s), grad_rows.dir
        lib.elmo_lstm_output_grad(
            *(d_out_rows.at(s), d_out_rows.dir, d_h.data_ptr(), d_h.stride(0)),
            *(out_rows.at(s), out_rows.dir, grad_ptr, grad_dir, n, width, has_proj_clip, p_clip),
        )
        dm = grad if proj is None else matmul.bmm(grad, proj_t)  # (2, n, H)
        c_prev, c_dir = (
            (c0_rows.at(0), c0_rows.dir) if t == 0 else (cell_rows.at(starts[t - 1]), cell_rows.dir)
        )
        lib.elmo_lstm_backward(
            *(dm.data_ptr(), d_c.data_ptr(), d_c.stride(0), act_rows.at(s), act_rows.dir),
            *(c_prev, c_dir, cell_rows.at(s), tanh_rows.at(s), cell_rows.dir),
            *(dz_rows.at(s), dz_rows.dir, n, dim, has_cell_clip, c_clip),
        )
        d_h[:, :n] = matmul.bmm(d_z_in[:, s : s + n], w_rec_t)
    d_w_rec, d_proj = _weight_grads(h0, out, sizes, starts, d_z_in, pre_proj, d_h_proj)
    return d_z_in[0], d_z_in[1], d_h, d_c, d_w_rec, d_proj, None, None, None


def _weight_grads(h0, out, sizes, starts, d_z_in, pre_proj, d_h_proj):
    """The recurrent and projection weight gradients, each one matmul over all steps:
    (2, P, 4H), and (2, H, P) or None without a projection (``pre_proj`` None)."""
    # h before each step, packed like the outputs: h0 for the first step, else the previous output.
    h_prev = torch.cat(
        [h0[:, : sizes[0]]]
        + [out[:, starts[t - 1] : starts[t - 1] + sizes[t]] for t in range(1, len(sizes))],
        dim=1,
    )
    d_w_rec = matmul.bmm(h_prev.transpose(1, 2), d_z_in)
    if pre_proj is None:
        return d_w_rec, None
    return d_w_rec, matmul.bmm(pre_proj.transpose(1, 2), d_h_proj)
