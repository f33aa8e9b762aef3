"""Every call into ``kernels.c``: one function per C kernel, taking tensors.

Each function checks that its tensors fit the kernel (float32 or int64 as the kernel reads them,
on the CPU, writable outputs contiguous) and that the run is on the native path
(``path.for_tensor``) with the library built (``native.kernels``); then it passes the pointers
and returns the results. Otherwise it returns None (False for the in-place Adagrad) and does
nothing, and the caller runs the torch operations beside its call: this module is the only place
that hands pointers to C.
"""

from __future__ import annotations

import ctypes

import torch

from elmo_lm.cpu import native, path

KERNELS = (
    "lstm_steps_forward",
    "lstm_steps_backward",
    "softmax_rows_",
    "first_distinct",
    "coalesce_rows",
    "adagrad_rows_",
)


def _library(t: torch.Tensor) -> ctypes.CDLL | None:
    return native.kernels() if path.for_tensor(t) == "native" else None


def usable(t: torch.Tensor) -> bool:
    """Whether the kernels run for code working on ``t``: the native path, the library built."""
    return _library(t) is not None


def _fit(dtype: torch.dtype, *tensors: torch.Tensor | None) -> bool:
    """All (but those None) of ``dtype``, contiguous, on the CPU."""
    return all(
        t is None or (t.dtype == dtype and t.is_contiguous() and t.device.type == "cpu")
        for t in tensors
    )


def _ptr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def _clips(cell_clip: float | None, proj_clip: float | None) -> tuple:
    return (
        cell_clip is not None,
        float(cell_clip or 0.0),
        proj_clip is not None,
        float(proj_clip or 0.0),
    )


def lstm_steps_forward(
    z_fwd: torch.Tensor,
    z_bwd: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    w_rec: torch.Tensor,
    proj: torch.Tensor | None,
    sizes: torch.Tensor,
    cell_clip: float | None,
    proj_clip: float | None,
    threads: int,
) -> tuple[torch.Tensor, ...] | None:
    """All steps of one LSTM layer, both directions, forward (``elmo_lstm_steps_forward``).

    Args:
        z_fwd, z_bwd: (N, 4H) each direction's packed input contributions, biases in.
        h0, c0: (2, B, P), (2, B, H) initial states of the rows sorted by length.
        w_rec: (2, P, 4H) recurrent weights (rows contiguous; the direction stride is free).
        proj: (2, H, P), or None for no projection.
        sizes: (steps,) int64, the running rows per step.
        threads: 2 to run the directions on two threads, 1 one after the other.

    Returns:
        ``(acts, cells, tanh_cells, pre_proj, out)``: the gates after their activations
        (2, N, 4H), the cells and their tanh (2, N, H), the projection's inputs (2, N, H) or
        None, the outputs (2, N, P). None where the kernel does not apply.
    """
    lib = _library(z_fwd)
    if w_rec.stride(2) != 1 or w_rec.stride(1) != w_rec.shape[2]:
        w_rec = w_rec.contiguous()
    if lib is None or not _fit(torch.float32, z_fwd, z_bwd, h0, c0, proj, w_rec[0]):
        return None
    if not _fit(torch.int64, sizes):
        return None
    total, four_dim = z_fwd.shape
    dim, batch, p = four_dim // 4, h0.shape[1], h0.shape[2]
    acts = z_fwd.new_empty(2, total, four_dim)
    cells = z_fwd.new_empty(2, total, dim)
    tanh_cells = z_fwd.new_empty(2, total, dim)
    pre_proj = z_fwd.new_empty(2, total, dim) if proj is not None else None
    out = z_fwd.new_empty(2, total, p)
    lib.elmo_lstm_steps_forward(
        *(z_fwd.data_ptr(), z_bwd.data_ptr(), h0.data_ptr(), c0.data_ptr(), batch),
        *(w_rec.data_ptr(), w_rec.stride(0), _ptr(proj)),
        *(sizes.data_ptr(), len(sizes), total, dim, p),
        *(acts.data_ptr(), cells.data_ptr(), tanh_cells.data_ptr(), _ptr(pre_proj)),
        *(out.data_ptr(), *_clips(cell_clip, proj_clip), threads),
    )
    return acts, cells, tanh_cells, pre_proj, out


def lstm_steps_backward(
    d_out: torch.Tensor,
    d_h: torch.Tensor,
    d_c: torch.Tensor,
    w_rec_t: torch.Tensor,
    proj_t: torch.Tensor | None,
    c0: torch.Tensor,
    saved: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    sizes: torch.Tensor,
    cell_clip: float | None,
    proj_clip: float | None,
    threads: int,
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """All steps of one LSTM layer, both directions, backward (``elmo_lstm_steps_backward``).

    Args:
        d_out: (2, N, P) the outputs' gradient.
        d_h, d_c: (2, B, P), (2, B, H) the final states' gradients, overwritten with those of
            the initial states.
        w_rec_t: (2, 4H, P) the recurrent weights transposed; proj_t (2, P, H) or None.
        c0: (2, B, H) the initial cells.
        saved: ``(acts, cells, tanh_cells, out)`` of ``lstm_steps_forward``.
        sizes, the clips and threads: as ``lstm_steps_forward``.

    Returns:
        The gates' pre-activation gradients (2, N, 4H) and the projection's output gradients
        (2, N, P) (None without a projection); None where the tensors do not fit. The backward
        of a forward that ran in C runs in C whatever the path is by then (no path check).
    """
    acts, cells, tanh_cells, out = saved
    lib = native.kernels()
    tensors = (d_out, d_h, d_c, w_rec_t, proj_t, c0, acts, cells, tanh_cells, out)
    if lib is None or not (_fit(torch.float32, *tensors) and _fit(torch.int64, sizes)):
        return None
    total, dim, p, batch = out.shape[1], cells.shape[-1], out.shape[-1], c0.shape[1]
    d_z = torch.empty_like(acts)
    d_h_proj = torch.empty_like(out) if proj_t is not None else None
    scratch = cells.new_empty(2, batch, dim)
    lib.elmo_lstm_steps_backward(
        *(d_out.data_ptr(), d_h.data_ptr(), d_c.data_ptr(), batch, w_rec_t.data_ptr()),
        *(_ptr(proj_t), c0.data_ptr(), acts.data_ptr()),
        *(cells.data_ptr(), tanh_cells.data_ptr(), out.data_ptr()),
        *(sizes.data_ptr(), len(sizes), total, dim, p, d_z.data_ptr()),
        *(_ptr(d_h_proj), scratch.data_ptr(), *_clips(cell_clip, proj_clip), threads),
    )
    return d_z, d_h_proj


def softmax_rows_(logits: torch.Tensor, threads: int | None = None) -> torch.Tensor | None:
    """``torch.softmax(logits, 1)`` of a float32 (n, w) matrix, in place (``elmo_softmax_rows``),
    rows over ``threads`` (torch's count when None); None where the kernel does not apply."""
    lib = _library(logits)
    if lib is None or logits.dim() != 2 or not _fit(torch.float32, logits):
        return None
    lib.elmo_softmax_rows(logits.data_ptr(), *logits.shape, threads or torch.get_num_threads())
    return logits


def first_distinct(
    draws: torch.Tensor, num_sampled: int, range_max: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``sampler.first_distinct`` of int64 draws (M,) as one loop (``elmo_first_distinct``):
    the ids, the draws it took and the distinct values found, counted up to ``num_sampled``;
    None where the kernel does not apply."""
    lib = _library(draws)
    if lib is None or draws.dtype != torch.int64:
        return None
    draws = draws.contiguous()
    seen = torch.zeros(range_max, dtype=torch.uint8)
    ids = torch.zeros(num_sampled, dtype=torch.long)
    found = ctypes.c_int64()
    tries = lib.elmo_first_distinct(
        *(draws.data_ptr(), draws.shape[0], num_sampled),
        *(seen.data_ptr(), ids.data_ptr(), ctypes.byref(found)),
    )
    return ids, torch.tensor(tries), torch.tensor(found.value)


def coalesce_rows(
    entries: torch.Tensor, values: torch.Tensor, n_rows: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The distinct rows of a sparse gradient's entries (n,) int64, increasing, and the sums of
    their float32 values (n, *row), in one pass (``elmo_coalesce_rows``): (k,) and (k, *row).
    None where the kernel does not apply."""
    lib = _library(values)
    if lib is None or values.dtype != torch.float32 or entries.dtype != torch.int64:
        return None
    entries, values = entries.contiguous(), values.contiguous()
    width = values[0].numel() if len(values) else 0
    rows = torch.empty_like(entries)
    summed = values.new_empty(values.shape)
    slot = torch.empty(n_rows, dtype=torch.long)  # scratch: kept alive for the call
    k = lib.elmo_coalesce_rows(
        *(entries.data_ptr(), values.data_ptr(), len(entries), width, n_rows),
        *(slot.data_ptr(), rows.data_ptr(), summed.data_ptr()),
    )
    return rows[:k], summed[:k]


def adagrad_rows_(
    rows: torch.Tensor,
    values: torch.Tensor,
    sums: torch.Tensor,
    param: torch.Tensor,
    lr: float,
    eps: float,
    threads: int | None = None,
) -> bool:
    """Adagrad on the distinct ``rows`` (k,) of ``param`` and its ``sums`` (float32, contiguous)
    with the gradient rows ``values`` (k, *row), in place (``elmo_adagrad_rows``): ``sum += g *
    g; p -= lr * g / (sqrt(sum) + eps)``. Rows must be distinct (they update on several
    threads). False (nothing done) where the kernel does not apply."""
    lib = _library(param)
    if lib is None or not len(values) or not _fit(torch.float32, sums, param):
        return False
    if values.dtype != torch.float32 or rows.dtype != torch.int64:
        return False
    values, rows = values.contiguous(), rows.contiguous()
    lib.elmo_adagrad_rows(
        *(rows.data_ptr(), values.data_ptr(), len(rows), values[0].numel()),
        *(sums.data_ptr(), param.data_ptr(), lr, eps, threads or torch.get_num_threads()),
    )
    return True
