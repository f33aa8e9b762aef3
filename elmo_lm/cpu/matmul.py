"""Float32 matrix products on the CPU through oneDNN where the BLAS would be slower.

torch's CPU builds ship two matrix-product libraries: MKL, which ``torch.mm`` uses for float32,
and oneDNN. MKL picks its kernels by processor vendor and runs its AVX2 code on AMD processors
even where they have AVX-512; oneDNN's kernels use AVX-512 on any processor that has it, so
on AMD processors with AVX-512 the sampled softmax's products run several times faster there
(``bench/bench_matmul.py`` prints both per product of a step; docs/PERFORMANCE.md has the
figures); where MKL runs AVX-512 the two are close. ``addmm`` sends float32 CPU products large
enough to pay for oneDNN's call overhead to its inner product
(``torch.ops.mkldnn._linear_pointwise``, the kernel ``torch.compile`` uses for linear layers)
and everything else (small products, other dtypes, GPUs, the torch and accelerator paths of
``path.py``, ``ELMO_LM_ONEDNN=0``, builds without oneDNN) to ``torch.addmm``. The two differ
only in float32 rounding. ``linear`` is the same product with autograd.
"""

from __future__ import annotations

import torch

from elmo_lm.cpu import path

# Products of fewer multiply-adds go to torch.addmm, faster there on small shapes.
MIN_MACS = 1 << 22
# oneDNN's share of a varying dimension is a multiple of this (see _onednn).
SHAPE_STEP = 128


# Whether this torch build has oneDNN's inner product (path.onednn says whether a run uses it).
ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def fits_onednn(a: torch.Tensor, b: torch.Tensor) -> bool:
    """A float32 CPU product large enough to pay for oneDNN's call, on a path that uses oneDNN
    (``path.onednn``), outside autocast (whose lower-precision products stay torch's)."""
    return (
        ONEDNN
        and path.onednn(a)
        and a.dtype == b.dtype == torch.float32
        and a.shape[0] * a.shape[1] * b.shape[1] >= MIN_MACS
        and not torch.is_autocast_enabled(a.device.type)
    )


def uses_onednn(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``addmm(bias, a, b)`` runs on oneDNN (which has no autograd: ``linear`` has)."""
    return fits_onednn(a, b) and not (
        torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)
    )


def addmm(bias: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``bias + a @ b`` of (m, k) and (k, n) matrices and an (n,) bias (None: no bias), without
    autograd (call it in a custom autograd Function, or use ``linear``)."""
    if not uses_onednn(a, b):
        return torch.mm(a, b) if bias is None else torch.addmm(bias, a, b)
    if not a.is_contiguous() and a.t().is_contiguous():
        # a is the transpose of a row-major matrix (a weight gradient x.t() @ grad). With few
        # rows (the LSTM's (P, N)) a row-major copy of it is cheap and oneDNN's fastest layout;
        # with many (the softmax's exps.t(), (S, N)) the transposed product is,
        # (b.t() @ a.t()).t().
        if a.shape[0] <= b.shape[1]:
            a = a.contiguous()
        else:
            out = _onednn(b.t(), a, None).t()
            return out if bias is None else out + bias
    if bias is not None and bias.dtype != torch.float32:
        bias = bias.float()
    return _onednn(a, b.t(), bias)


def _onednn(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ w.t() + bias`` on oneDNN, with its shapes drawn from a small set.

    oneDNN builds (compiles) a kernel for every new shape, which takes several times as long as
    a product of the char CNN's size (docs/PERFORMANCE.md); the char CNN's products have a
    new number of rows (distinct tokens x windows) every batch. A dimension that varies (rows, or the inner dimension of a weight gradient) is
    therefore cut at a multiple of ``SHAPE_STEP``: oneDNN takes that part, whose shapes repeat,
    and torch's BLAS the few rows (or inner entries) past it. Fixed dimensions that are
    multiples of ``SHAPE_STEP`` (the LSTM's and softmax's) go through whole.
    """
    inner = torch.ops.mkldnn._linear_pointwise  # x @ w.t() + bias
    m, k = x.shape
    k_head = k - k % SHAPE_STEP
    if k_head and k_head < k:  # inner dimension: the rest adds on
        out = _onednn(x[:, :k_head], w[:, :k_head], bias)
        return out.addmm_(x[:, k_head:], w[:, k_head:].t())
    m_head = m - m % SHAPE_STEP
    if m_head and m_head < m:  # rows: the rest computed apart
        rest = x[m_head:] @ w.t() if bias is None else torch.addmm(bias, x[m_head:], w.t())
        return torch.cat([inner(x[:m_head], w, bias, "none", [], ""), rest])
    return inner(x, w, bias, "none", [], "")


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` of (m, k) and (k, n) matrices, without autograd (see ``addmm``)."""
    return addmm(None, a, b)


def bmm(a: torch.Tensor, b: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
    """``add + a @ b`` of (batch, n, k) and (batch, k, m) tensors (None: nothing added), without
    autograd: one ``addmm`` per batch entry where oneDNN runs it (the LSTM's per-step products
    of the larger shapes), else ``torch.bmm`` / ``torch.baddbmm``."""
    small = a.shape[1] * a.shape[2] * b.shape[2] < MIN_MACS  # decided before making views
    if small or not uses_onednn(a[0], b[0]):
        return torch.bmm(a, b) if add is None else torch.baddbmm(add, a, b)
    out = torch.stack([addmm(None, a[i], b[i]) for i in range(a.shape[0])])
    return out if add is None else out.add_(add)


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return addmm(bias, x, weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        d_x = mm(grad, weight.t()) if ctx.needs_input_grad[0] else None
        d_w = mm(x.t(), grad) if ctx.needs_input_grad[1] else None
        d_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return d_x, d_w, d_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``bias + x @ weight`` of (m, k), (k, n) and (n,) tensors, with autograd; the products of
    the forward and backward passes go through ``addmm``."""
    if not fits_onednn(x, weight):
        return torch.mm(x, weight) if bias is None else torch.addmm(bias, x, weight)
    return _Linear.apply(x, weight, bias)
