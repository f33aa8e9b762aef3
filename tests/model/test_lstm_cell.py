"""The fused LSTM cell operators (``elmo_lm.model.cell``) and the steps built on them: the
formulas against autograd, the Triton kernels against the torch implementation, the number of
operations a step dispatches, bfloat16 products, and ``torch.compile``."""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from elmo_lm.cpu import path
from elmo_lm.model import cell
from elmo_lm.model.lstm import ElmoLstm, LstmSteps

# What a dispatch mode sees that launches no kernel: views, aliases and empty allocations.
NOT_KERNELS = {"detach", "lift_fresh", "empty", "empty_like", "empty_strided", "new_empty"}
NOT_KERNELS |= {"new_empty_strided", "_reshape_alias"}


class CountKernels(TorchDispatchMode):
    """Counts the kernel-like operators dispatched inside it, by name."""

    def __init__(self):
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func.overloadpacket.__name__ not in NOT_KERNELS:
            self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


def plain_cell(a, c_prev, cell_clip):
    """The weights file's cell, with the forget bias already in ``a``: (c, m)."""
    i, j, f, o = a.chunk(4, -1)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(j)
    if cell_clip is not None:
        c = c.clamp(-cell_clip, cell_clip)
    return c, torch.sigmoid(o) * torch.tanh(c)


def _cell_problem(dtype, n=3, dim=16, scale=2.0):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, n, 4 * dim, generator=g, dtype=dtype) * scale
    c_prev = torch.randn(2, n + 2, dim, generator=g, dtype=dtype)[:, :n]  # a view, as in steps
    dm, dc = (torch.randn(2, n, dim, generator=g, dtype=dtype) for _ in range(2))
    return a, c_prev, dm, dc


@pytest.mark.parametrize("clip", [0.5, None])
def test_the_cell_operators_match_autograd_of_the_plain_cell(clip):
    a, c_prev, dm, dc = _cell_problem(torch.float64)
    gates, c, tanh_c, m = torch.ops.elmo_lm.lstm_cell(a, c_prev, clip)
    a_ref, c_prev_ref = a.clone().requires_grad_(), c_prev.clone().requires_grad_()
    c_ref, m_ref = plain_cell(a_ref, c_prev_ref, clip)
    torch.testing.assert_close(c, c_ref.detach())
    torch.testing.assert_close(m, m_ref.detach())
    torch.testing.assert_close(tanh_c, torch.tanh(c_ref.detach()))
    i, j, f, o = a.chunk(4, -1)
    activated = torch.cat([i.sigmoid(), j.tanh(), f.sigmoid(), o.sigmoid()], -1)
    torch.testing.assert_close(gates, activated)
    dz, dc_prev = torch.ops.elmo_lm.lstm_cell_backward(dm, dc, gates, c, tanh_c, c_prev, clip)
    want_dz, want_dc_prev = torch.autograd.grad([m_ref, c_ref], [a_ref, c_prev_ref], [dm, dc])
    torch.testing.assert_close(dz, want_dz)
    torch.testing.assert_close(dc_prev, want_dc_prev)


def test_the_cell_keeps_its_state_in_the_cells_dtype():
    """bfloat16 products around a float32 cell: m and dz follow the products' dtype."""
    a, c_prev, dm, dc = _cell_problem(torch.float32)
    gates, c, tanh_c, m = cell.lstm_cell(a.bfloat16(), c_prev, 3.0)
    assert (gates.dtype, c.dtype, tanh_c.dtype, m.dtype) == (*[torch.float32] * 3, torch.bfloat16)
    dz, dc_prev = cell.lstm_cell_backward(dm.bfloat16(), dc, gates, c, tanh_c, c_prev, 3.0)
    assert (dz.dtype, dc_prev.dtype) == (torch.bfloat16, torch.float32)


def test_each_cell_operator_is_one_operator_on_meta_tensors():
    a, c_prev, dm, dc = (t.to("meta") for t in _cell_problem(torch.float32))
    with CountKernels() as counted:
        gates, c, tanh_c, m = cell.lstm_cell(a, c_prev, 3.0)
        dz, dc_prev = cell.lstm_cell_backward(dm, dc, gates, c, tanh_c, c_prev, 3.0)
    assert dict(counted.ops) == {
        "elmo_lm.lstm_cell.default": 1,
        "elmo_lm.lstm_cell_backward.default": 1,
    }
    assert [t.shape for t in (gates, c, tanh_c, m, dz, dc_prev)] == [
        a.shape, *[c_prev.shape] * 3, a.shape, c_prev.shape
    ]  # fmt: skip


@pytest.mark.parametrize("clip", [0.5, None])
@pytest.mark.parametrize("dim", [16, 1100])  # 1100: more than one block of columns per row
@pytest.mark.parametrize("products", [torch.float32, torch.bfloat16])
def test_the_triton_kernels_match_the_torch_cell(clip, dim, products):
    """Runs the CUDA implementation's kernels in Triton's interpreter, on CPU tensors:
    ``TRITON_INTERPRET=1 python -m pytest tests/model/test_lstm_cell.py`` where triton is
    installed."""
    import os

    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("the Triton kernels run on CPU tensors only with TRITON_INTERPRET=1")
    a, c_prev, dm, dc = _cell_problem(torch.float32, dim=dim)
    a, dm = a.to(products), dm.to(products)
    want = cell.torch_cell(a, c_prev, clip)
    got = cell.triton_cell(a, c_prev, clip)
    tolerance = {"atol": 1e-6, "rtol": 1e-5} if products == torch.float32 else {}
    for ours, theirs in zip(got, want):
        assert ours.dtype == theirs.dtype
        torch.testing.assert_close(ours, theirs, **tolerance)
    gates, c, tanh_c, _ = want
    # Saved tensors as the steps pass them: views into (2, N, .) tensors.
    saved = [torch.cat([t, t], 1)[:, 1 : 1 + t.shape[1]] for t in (gates, c, tanh_c)]
    want = cell.torch_cell_backward(dm, dc, *saved, c_prev, clip)
    got = cell.triton_cell_backward(dm, dc, *saved, c_prev, clip)
    for ours, theirs in zip(got, want):
        assert ours.dtype == theirs.dtype
        torch.testing.assert_close(ours, theirs, **tolerance)


def test_a_training_step_is_at_most_eight_operators_per_time_step():
    """At the original model's shape (dim 4096, projection 512, both clips, batch 128, 20
    steps) on meta tensors: forward and backward of one layer's steps dispatch at most 4 + 4
    kernel-like operators per step (on a GPU, each a launch), plus a few around the loop."""
    time, batch, dim, proj_dim = 20, 128, 4096, 512

    def leaf(*shape):
        return torch.empty(*shape, device="meta", requires_grad=True)

    z = [leaf(time * batch, 4 * dim) for _ in range(2)]
    h, c = leaf(2, batch, proj_dim), leaf(2, batch, dim)
    w_rec, proj = leaf(2, proj_dim, 4 * dim), leaf(2, dim, proj_dim)
    grads = [torch.empty(s, device="meta") for s in [(2, time * batch, proj_dim), h.shape, c.shape]]
    with path.use("accelerator"), CountKernels() as forward:
        outputs = LstmSteps.apply(*z, h, c, w_rec, proj, [batch] * time, 3.0, 3.0)
    with path.use("accelerator"), CountKernels() as backward:
        torch.autograd.backward(outputs, grads)
    n_forward, n_backward = sum(forward.ops.values()), sum(backward.ops.values())
    print(f"\nper step: forward {n_forward / time:.2f}, backward {n_backward / time:.2f}")
    print(f"forward {n_forward}: {dict(forward.ops)}\nbackward {n_backward}: {dict(backward.ops)}")
    assert n_forward <= 4 * time + 10
    assert n_backward <= 4 * time + 12
    assert forward.ops["elmo_lm.lstm_cell.default"] == time
    assert backward.ops["elmo_lm.lstm_cell_backward.default"] == time
    # Nothing per step that copies: no cat or copy_ inside the loop, no writes into views.
    for ops in (forward.ops, backward.ops):
        assert ops["aten.cat.default"] < 8 and not ops["aten.copy_.default"]
        assert not [op for op in ops if op.endswith(".out")]


def _lstm(tiny_options, **overrides):
    torch.manual_seed(0)
    lstm = ElmoLstm(tiny_options(**overrides))
    for p in lstm.parameters():  # weights large enough that the clips and gates saturate
        p.data.mul_(2.0)
    return lstm


@pytest.mark.parametrize("ragged", [False, True])
def test_bf16_products_stay_close_to_float32_and_keep_the_cell_in_float32(
    tiny_options, ragged, monkeypatch
):
    lstm = _lstm(tiny_options, dim=64, projection_dim=16)
    steps = []
    real_cell = cell.lstm_cell
    monkeypatch.setattr(
        cell, "lstm_cell", lambda a, c, clip: steps.append((a, c)) or real_cell(a, c, clip)
    )
    inputs = torch.randn(2, 5, 6, 16)
    lens = torch.tensor([6, 2, 0, 6, 3]) if ragged else None
    results = {}
    for bf16 in (False, True):
        lstm.bf16_recurrence = bf16
        steps.clear()
        x = inputs.clone().requires_grad_()
        with path.use("accelerator"), torch.autocast("cpu", dtype=torch.bfloat16):
            outputs, (h, c) = lstm(x, None, lens)
            loss = sum(o.float().square().sum() for o in outputs) + c.sum()
        grads = torch.autograd.grad(loss, [x, *lstm.parameters()])
        assert c.dtype == h.dtype == torch.float32
        assert {(a.dtype, c.dtype) for a, c in steps} == {
            (torch.bfloat16 if bf16 else torch.float32, torch.float32)
        }
        results[bf16] = [*outputs, h, c, *grads]
    for ours, full in zip(results[True][-len(grads) :], results[False][-len(grads) :]):
        assert ours.dtype == full.dtype == torch.float32
    for ours, full in zip(results[True], results[False]):
        # within a few % of the float32 recurrence's (relative to each tensor's scale)
        error = (ours.float() - full.float()).norm() / full.float().norm()
        assert error < 0.05, error


@pytest.mark.parametrize("ragged", [False, True])
def test_compiled_steps_have_no_graph_break_and_match_eager(tiny_options, ragged):
    """One ElmoLstm forward and backward under ``torch.compile(fullgraph=True)`` on the
    accelerator path: the fused cell operators trace as they are, with eager's numbers.

    Rows of different lengths: ``ElmoLstm.forward`` reads their lengths on the host (the
    embedder's case, not training's), so the layers, which take the packed rows and the
    running rows per step, are compiled alone.
    """
    import torch._dynamo
    from torch._dynamo.testing import CompileCounterWithBackend

    lstm = _lstm(tiny_options, n_layers=1)  # one layer, few steps: tracing unrolls them
    sizes = [3, 3, 1] if ragged else [3] * 3
    inputs = torch.randn(2, sum(sizes), 8)  # (2, N, P) time-major packed

    def loss_of(x):
        if not ragged:  # (2, batch, time, P)
            outputs, (h, c) = lstm(x.view(2, 3, 3, 8).transpose(1, 2))
        else:
            state = lstm.zero_state(3, x)
            outputs, hs, cs = [], [], []
            for layer in range(lstm.n_layers):
                x, h, c = lstm._layer(layer, x, state[0][layer], state[1][layer], sizes)
                outputs.append(x)
                hs.append(h)
                cs.append(c)
            h, c = torch.stack(hs), torch.stack(cs)
        return sum((o * o).sum() for o in outputs) + h.sum() + c.sum()

    results = []
    torch._dynamo.reset()
    with path.use("accelerator"):
        # aot_eager: the forward and the backward graphs, run by torch's eager kernels
        backend = CompileCounterWithBackend("aot_eager")
        compiled = torch.compile(loss_of, fullgraph=True, backend=backend)
        for fn in (loss_of, compiled):
            x = inputs.clone().requires_grad_()
            loss = fn(x)
            results.append([loss, *torch.autograd.grad(loss, [x, *lstm.parameters()])])
    assert backend.frame_count == 1  # one graph: no break (fullgraph would raise at one)
    graph = backend.graphs[0].print_readable(print_output=False)  # with the steps' bodies
    assert "elmo_lm.lstm_cell.default" in graph and "elmo_lm.lstm_cell_backward" in graph
    for ours, eager in zip(*results):
        torch.testing.assert_close(ours, eager, atol=1e-5, rtol=1e-5)
