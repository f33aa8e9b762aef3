"""The LSTM cell's pointwise work, one fused operator per pass: ``torch.ops.elmo_lm.lstm_cell``
and ``torch.ops.elmo_lm.lstm_cell_backward``.

A step of the recurrence (``lstm.LstmSteps``) is two matrix products and this cell. Written as
torch operations the cell is about ten kernels a step on a GPU (its gates' activations, the
cell update, its clip, tanh, the output), each a launch; as one custom operator it is one
kernel: a Triton kernel on CUDA, the same formulas in torch operations everywhere else (the
CPU, the torch and accelerator paths of ``ELMO_LM_PATH``). Fake (meta) implementations make each
one operator to ``torch.compile``, which traces them without a graph break.

Gate blocks are the weights file's ``i, j, f, o`` (the forget bias already added to ``f``).
The products around the cell may run in a lower precision than the cell (``bf16_recurrence``):
``m`` and ``dz``, which feed them, take the dtype of ``a`` and ``dm``; the cell state, the
activations and the cell gradient keep that of ``c_prev`` (float32 then).

Triton is imported on the CUDA path only (it is not a dependency). ``triton_cell`` and
``triton_cell_backward`` launch the kernels on any tensors Triton takes, CPU tensors too under
``TRITON_INTERPRET=1`` (how the tests check them against the torch implementation).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

# Columns of H per Triton program; programs run one row (direction, batch row) each.
BLOCK = 1024


def torch_cell(
    a: Tensor, c_prev: Tensor, cell_clip: float | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One step's cell from its gate pre-activations, in torch operations (``lstm_cell`` on
    every device but CUDA).

    Args:
        a: (2, n, 4H) gate pre-activations ``i, j, f, o``, the forget bias in.
        c_prev: (2, n, H) the cell before the step.
        cell_clip: the cell's clip, or None.

    Returns:
        The activated gates ``sigmoid(i), tanh(j), sigmoid(f), sigmoid(o)`` (2, n, 4H), the new
        cell ``c`` (clipped) and ``tanh(c)`` (2, n, H), all of ``c_prev``'s dtype, and
        ``m = sigmoid(o) * tanh(c)`` (2, n, H) of ``a``'s dtype.
    """
    dim, dtype = c_prev.shape[-1], a.dtype
    a = a.to(c_prev.dtype)
    gates = a.sigmoid()  # a fresh tensor: i, f, o are done, j is next
    gates[..., dim : 2 * dim] = torch.tanh(a[..., dim : 2 * dim])
    i, g, f, o = gates.split(dim, dim=-1)
    c = torch.addcmul(f * c_prev, i, g)
    if cell_clip is not None:
        c = c.clamp(-cell_clip, cell_clip)
    tanh_c = torch.tanh(c)
    return gates, c, tanh_c, (o * tanh_c).to(dtype)


def torch_cell_backward(
    dm: Tensor,
    dc_next: Tensor,
    gates: Tensor,
    c: Tensor,
    tanh_c: Tensor,
    c_prev: Tensor,
    cell_clip: float | None,
) -> tuple[Tensor, Tensor]:
    """The gradients of one ``lstm_cell`` step, in torch operations (``lstm_cell_backward`` on
    every device but CUDA).

    Args:
        dm: (2, n, H) the gradient reaching ``m``.
        dc_next: (2, n, H) the gradient reaching ``c`` from the later steps.
        gates, c, tanh_c: ``lstm_cell``'s outputs; c_prev and cell_clip its inputs.

    Returns:
        ``dz`` (2, n, 4H), the gate pre-activations' gradient, of ``dm``'s dtype, and the
        gradient reaching ``c_prev`` (2, n, H), of ``c``'s.
    """
    dim = c.shape[-1]
    i, g, f, o = gates.split(dim, dim=-1)
    dm_c = dm.to(c.dtype)
    dc = torch.addcmul(dc_next, dm_c, o * (1 - tanh_c * tanh_c))
    if cell_clip is not None:
        dc = dc * (c.abs() < cell_clip)
    parts = [dc * g * i * (1 - i), dc * i * (1 - g * g), dc * c_prev * f * (1 - f)]
    dz = torch.cat([*parts, dm_c * tanh_c * o * (1 - o)], dim=-1)
    return dz.to(dm.dtype), dc * f


lstm_cell = torch.library.custom_op("elmo_lm::lstm_cell", torch_cell, mutates_args=())
lstm_cell_backward = torch.library.custom_op(
    "elmo_lm::lstm_cell_backward", torch_cell_backward, mutates_args=()
)


@lstm_cell.register_fake
def _(a, c_prev, cell_clip):
    gates = a.new_empty(a.shape, dtype=c_prev.dtype)
    c, tanh_c = (c_prev.new_empty(c_prev.shape) for _ in range(2))
    return gates, c, tanh_c, a.new_empty(c_prev.shape)


@lstm_cell_backward.register_fake
def _(dm, dc_next, gates, c, tanh_c, c_prev, cell_clip):
    return dm.new_empty(gates.shape), c.new_empty(c.shape)


@lstm_cell.register_kernel("cuda")
def _(a, c_prev, cell_clip):
    if c_prev.dtype == torch.float64:  # the kernel computes in float32
        return torch_cell(a, c_prev, cell_clip)
    return triton_cell(a, c_prev, cell_clip)


@lstm_cell_backward.register_kernel("cuda")
def _(dm, dc_next, gates, c, tanh_c, c_prev, cell_clip):
    if c.dtype == torch.float64:
        return torch_cell_backward(dm, dc_next, gates, c, tanh_c, c_prev, cell_clip)
    return triton_cell_backward(dm, dc_next, gates, c, tanh_c, c_prev, cell_clip)


def _rows(t: Tensor) -> Tensor:
    """``t`` (2, n, .) with unit stride along its last axis; the kernels take the others."""
    return t if t.stride(-1) == 1 else t.contiguous()


def _grid(c: Tensor) -> tuple[int, int]:
    return c.shape[0] * c.shape[1], -(-c.shape[2] // BLOCK)


def triton_cell(
    a: Tensor, c_prev: Tensor, cell_clip: float | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``lstm_cell`` in one Triton kernel (the CUDA implementation)."""
    forward, _ = _kernels()
    a, c_prev = _rows(a), _rows(c_prev)
    gates = a.new_empty(a.shape, dtype=c_prev.dtype)
    c, tanh_c = torch.empty_like(c_prev), torch.empty_like(c_prev)
    m = a.new_empty(c_prev.shape)
    _, n, dim = c_prev.shape
    if n:
        forward[_grid(c_prev)](
            *(a, c_prev, gates, c, tanh_c, m, n, dim),
            *(a.stride(0), a.stride(1), c_prev.stride(0), c_prev.stride(1)),
            0.0 if cell_clip is None else cell_clip,
            HAS_CLIP=cell_clip is not None,
            BLOCK=BLOCK,
        )
    return gates, c, tanh_c, m


def triton_cell_backward(
    dm: Tensor,
    dc_next: Tensor,
    gates: Tensor,
    c: Tensor,
    tanh_c: Tensor,
    c_prev: Tensor,
    cell_clip: float | None,
) -> tuple[Tensor, Tensor]:
    """``lstm_cell_backward`` in one Triton kernel (the CUDA implementation)."""
    _, backward = _kernels()
    inputs = [_rows(t) for t in (dm, dc_next, gates, c, tanh_c, c_prev)]
    dz = dm.new_empty(gates.shape)
    dc_prev = c.new_empty(c.shape)
    _, n, dim = c.shape
    if n:
        strides = [s for t in inputs for s in (t.stride(0), t.stride(1))]
        backward[_grid(c)](
            *inputs,
            *(dz, dc_prev, n, dim),
            *strides,
            0.0 if cell_clip is None else cell_clip,
            HAS_CLIP=cell_clip is not None,
            BLOCK=BLOCK,
        )
    return dz, dc_prev


@functools.cache
def _kernels():
    """The two Triton kernels, compiled on first use: (forward, backward). Each program does
    ``BLOCK`` columns of one row (direction ``d``, batch row ``r``) of every tensor."""
    # Module globals, where Triton's compiler looks up the names a kernel uses.
    global triton, tl
    import triton
    import triton.language as tl

    @triton.jit
    def forward(
        a_ptr, cp_ptr, gates_ptr, c_ptr, tanh_ptr, m_ptr, n, dim,
        sa0, sa1, scp0, scp1, clip,
        HAS_CLIP: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        row = tl.program_id(0)
        d, r = row // n, row % n
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        keep = cols < dim
        a_row = a_ptr + d * sa0 + r * sa1 + cols
        i = tl.sigmoid(tl.load(a_row, mask=keep).to(tl.float32))
        g = 2.0 * tl.sigmoid(2.0 * tl.load(a_row + dim, mask=keep).to(tl.float32)) - 1.0  # tanh
        f = tl.sigmoid(tl.load(a_row + 2 * dim, mask=keep).to(tl.float32))
        o = tl.sigmoid(tl.load(a_row + 3 * dim, mask=keep).to(tl.float32))
        c_prev = tl.load(cp_ptr + d * scp0 + r * scp1 + cols, mask=keep).to(tl.float32)
        c = f * c_prev + i * g
        if HAS_CLIP:
            c = tl.minimum(tl.maximum(c, -clip), clip)
        tanh_c = 2.0 * tl.sigmoid(2.0 * c) - 1.0
        gates_row = gates_ptr + row * 4 * dim + cols
        kind = gates_ptr.dtype.element_ty
        tl.store(gates_row, i.to(kind), mask=keep)
        tl.store(gates_row + dim, g.to(kind), mask=keep)
        tl.store(gates_row + 2 * dim, f.to(kind), mask=keep)
        tl.store(gates_row + 3 * dim, o.to(kind), mask=keep)
        out = row * dim + cols
        tl.store(c_ptr + out, c.to(c_ptr.dtype.element_ty), mask=keep)
        tl.store(tanh_ptr + out, tanh_c.to(tanh_ptr.dtype.element_ty), mask=keep)
        tl.store(m_ptr + out, (o * tanh_c).to(m_ptr.dtype.element_ty), mask=keep)

    @triton.jit
    def backward(
        dm_ptr, dcn_ptr, gates_ptr, c_ptr, tanh_ptr, cp_ptr, dz_ptr, dcp_ptr, n, dim,
        sdm0, sdm1, sdcn0, sdcn1, sg0, sg1, sc0, sc1, st0, st1, scp0, scp1, clip,
        HAS_CLIP: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        row = tl.program_id(0)
        d, r = row // n, row % n
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        keep = cols < dim
        dm = tl.load(dm_ptr + d * sdm0 + r * sdm1 + cols, mask=keep).to(tl.float32)
        dc = tl.load(dcn_ptr + d * sdcn0 + r * sdcn1 + cols, mask=keep).to(tl.float32)
        gates_row = gates_ptr + d * sg0 + r * sg1 + cols
        i = tl.load(gates_row, mask=keep).to(tl.float32)
        g = tl.load(gates_row + dim, mask=keep).to(tl.float32)
        f = tl.load(gates_row + 2 * dim, mask=keep).to(tl.float32)
        o = tl.load(gates_row + 3 * dim, mask=keep).to(tl.float32)
        c = tl.load(c_ptr + d * sc0 + r * sc1 + cols, mask=keep).to(tl.float32)
        tanh_c = tl.load(tanh_ptr + d * st0 + r * st1 + cols, mask=keep).to(tl.float32)
        c_prev = tl.load(cp_ptr + d * scp0 + r * scp1 + cols, mask=keep).to(tl.float32)
        dc = dc + dm * o * (1.0 - tanh_c * tanh_c)
        if HAS_CLIP:
            dc = tl.where(tl.abs(c) < clip, dc, 0.0)
        dz_row = dz_ptr + row * 4 * dim + cols
        kind = dz_ptr.dtype.element_ty
        tl.store(dz_row, (dc * g * i * (1.0 - i)).to(kind), mask=keep)
        tl.store(dz_row + dim, (dc * i * (1.0 - g * g)).to(kind), mask=keep)
        tl.store(dz_row + 2 * dim, (dc * c_prev * f * (1.0 - f)).to(kind), mask=keep)
        tl.store(dz_row + 3 * dim, (dm * tanh_c * o * (1.0 - o)).to(kind), mask=keep)
        dc_prev = (dc * f).to(dcp_ptr.dtype.element_ty)
        tl.store(dcp_ptr + row * dim + cols, dc_prev, mask=keep)

    return forward, backward
