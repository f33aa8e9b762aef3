"""The LSTM's hand-written backward against autograd through a plain per-step loop."""

import pytest
import torch

from elmo_lm.model.lstm import ElmoLstm


def reference(lstm: ElmoLstm, inputs, state, lengths):
    """The cell of the weights file, one step at a time, rows masked past their length."""
    _, batch, time, p = inputs.shape
    h_all, c_all = state
    outputs, hs, cs, x = [], [], [], inputs
    for layer in range(lstm.n_layers):
        w, b = lstm.weights[layer], lstm.biases[layer]
        proj = lstm.projections[layer] if len(lstm.projections) else None
        h, c, out = h_all[layer], c_all[layer], []
        for t in range(time):
            z = torch.cat([x[:, :, t], h], -1) @ w + b[:, None]
            i, j, f, o = z.chunk(4, -1)
            c_new = torch.sigmoid(f + 1) * c + torch.sigmoid(i) * torch.tanh(j)
            if lstm.cell_clip is not None:
                c_new = c_new.clamp(-lstm.cell_clip, lstm.cell_clip)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            if proj is not None:  # the original's cell: no projection, no proj_clip when P == H
                h_new = h_new @ proj
                if lstm.proj_clip is not None:
                    h_new = h_new.clamp(-lstm.proj_clip, lstm.proj_clip)
            live = (t < lengths).view(1, batch, 1)
            h, c = torch.where(live, h_new, h), torch.where(live, c_new, c)
            out.append(torch.where(live, h_new, torch.zeros_like(h_new)))
        y = torch.stack(out, 2)
        if lstm.use_skip_connections and layer > 0:
            y = y + x * (torch.arange(time) < lengths[:, None]).view(1, batch, time, 1)
        outputs.append(y)
        hs.append(h)
        cs.append(c)
        x = y
    return outputs, (torch.stack(hs), torch.stack(cs))


@pytest.mark.parametrize("dim", [32, 8])  # 8 = projection_dim: no W_P_0
@pytest.mark.parametrize("clip", [0.3, None])
@pytest.mark.parametrize("lengths", [None, [5, 2, 0, 5, 3]])
def test_gradients_match_autograd(tiny_options, clip, lengths, dim):
    torch.manual_seed(0)
    lstm = ElmoLstm(tiny_options(dim=dim, cell_clip=clip, proj_clip=clip, dropout=0.0)).double()
    assert len(lstm.projections) == (2 if dim == 32 else 0)
    inputs = torch.randn(2, 5, 5, 8, dtype=torch.double, requires_grad=True)
    state = tuple(s.double().normal_().requires_grad_() for s in lstm.zero_state(5, inputs.float()))
    lens = torch.tensor(lengths) if lengths else None
    outputs, (h, c) = lstm(inputs, state, lens)
    ref_outputs, (rh, rc) = reference(
        lstm, inputs, state, lens if lens is not None else torch.full((5,), 5)
    )
    weights = [torch.randn_like(o) for o in outputs] + [torch.randn_like(h), torch.randn_like(c)]
    params = [inputs, *state, *lstm.parameters()]

    def loss(outs, hh, cc):
        return sum((o * w).sum() for o, w in zip([*outs, hh, cc], weights))

    got = torch.autograd.grad(loss(outputs, h, c), params)
    want = torch.autograd.grad(loss(ref_outputs, rh, rc), params)
    for a, b in zip(outputs, ref_outputs):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(h, rh)
    torch.testing.assert_close(c, rc)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


# (batch, projection_dim, dim): the kernel's products work on tiles of 8 rows x 32 columns;
# the second shape has whole tiles and edge tiles in every product.
SHAPES = {"small": (5, 8, 32), "small-no-projection": (5, 8, 8)}
SHAPES |= {"tiles": (11, 40, 48), "tiles-no-projection": (11, 40, 40)}
LENGTHS = {5: [5, 2, 0, 5, 3], 11: [5, 2, 0, 5, 3, 1, 4, 5, 5, 2, 3]}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("clip", [0.3, None])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("kernels", ["native", "torch", "accelerator"])
def test_float32_steps_match_the_float64_reference(
    tiny_options, clip, ragged, shape, kernels, monkeypatch
):
    """Float32 training runs the steps in kernels.c's kernels on the native path, in torch
    operations on the others: outputs, states and all gradients as the float64 reference's."""
    from elmo_lm.cpu import native, path
    from tests.cpu.calls import spy_kernels

    if kernels == "native" and native.kernels() is None:
        pytest.skip("no C compiler: the kernels of kernels.c cannot be built here")
    batch, proj_dim, dim = SHAPES[shape]
    options = tiny_options(dim=dim, projection_dim=proj_dim, cell_clip=clip, proj_clip=clip)
    options.dropout = 0.0
    lstm = ElmoLstm(options)
    # A test of the arithmetic, not of the initialisers: weights drawn here (twice a fan-in
    # normal), large enough that the clips and gates saturate, and on this seed with no value
    # within float32 rounding of a clip, where float32 and float64 may take different sides.
    torch.manual_seed(0)
    with torch.no_grad():
        for layer in range(lstm.n_layers):
            lstm.weights[layer].normal_().mul_(2.0 * (2 * proj_dim) ** -0.5)
            if len(lstm.projections):
                lstm.projections[layer].normal_().mul_(2.0 * dim**-0.5)
    inputs = torch.randn(2, batch, 5, proj_dim, requires_grad=True)
    state = tuple(s.normal_().requires_grad_() for s in lstm.zero_state(batch, inputs))
    lens = torch.tensor(LENGTHS[batch]) if ragged else None
    ran = spy_kernels(monkeypatch)
    with path.use(kernels):
        outputs, (h, c) = lstm(inputs, state, lens)
        weights = [torch.randn_like(o) for o in outputs] + [
            torch.randn_like(h),
            torch.randn_like(c),
        ]
        params = [inputs, *state, *lstm.parameters()]
        loss = sum((o * w).sum() for o, w in zip([*outputs, h, c], weights))
        got = torch.autograd.grad(loss, params)
    in_c = {"lstm_steps_forward": lstm.n_layers, "lstm_steps_backward": lstm.n_layers}
    assert dict(ran) == (in_c if kernels == "native" else {})  # every layer, both passes
    ref = lstm.double()
    ref_state = tuple(s.detach().double().requires_grad_() for s in state)
    ref_inputs = inputs.detach().double().requires_grad_()
    ref_outputs, (rh, rc) = reference(
        ref, ref_inputs, ref_state, lens if lens is not None else torch.full((batch,), 5)
    )
    ref_loss = sum((o * w.double()).sum() for o, w in zip([*ref_outputs, rh, rc], weights))
    want = torch.autograd.grad(ref_loss, [ref_inputs, *ref_state, *ref.parameters()])
    for a, b in zip([*outputs, h, c], [*ref_outputs, rh, rc]):
        torch.testing.assert_close(a, b.float(), atol=2e-5, rtol=2e-5)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b.float(), atol=1e-4, rtol=1e-4)


def test_native_steps_on_one_thread_equal_two(tiny_options, monkeypatch):
    """kernels.c runs the two directions on two threads, or one after the other: the same
    numbers either way."""
    from elmo_lm.cpu import native, path
    from elmo_lm.model import lstm as lstm_module
    from tests.cpu.calls import spy_kernels

    if native.kernels() is None:
        pytest.skip("no C compiler: the kernels of kernels.c cannot be built here")
    ran = spy_kernels(monkeypatch)
    torch.manual_seed(0)
    lstm = ElmoLstm(tiny_options(dim=48, projection_dim=40, cell_clip=3.0, proj_clip=3.0))
    lstm.dropout_p = 0.0
    inputs = torch.randn(2, 11, 6, 40, requires_grad=True)
    lens = torch.tensor(LENGTHS[11])
    results = []
    for threads in (1, 2):
        monkeypatch.setattr(lstm_module, "_threads", lambda threads=threads: threads)
        with path.use("native"):
            outputs, (h, c) = lstm(inputs, None, lens)
            loss = sum(o.square().sum() for o in outputs) + h.sum() + c.sum()
            grads = torch.autograd.grad(loss, [inputs, *lstm.parameters()])
        results.append([*outputs, h, c, *grads])
    assert ran["lstm_steps_forward"] == ran["lstm_steps_backward"] == 2 * lstm.n_layers
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_mixed_precision_training_runs_the_recurrence_in_float32(tiny_options):
    """Under autocast (bf16-mixed training) the steps take float32 inputs and give float32 grads."""
    from elmo_lm import BiLM, batch_to_ids

    torch.manual_seed(0)
    bilm = BiLM(tiny_options()).train()
    ids = batch_to_ids([["a", "b", "c"], ["d", "e", "f"]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fwd, bwd, _ = bilm.lm_forward(ids, ids.flip(1))
    (fwd.float().square().mean() + bwd.float().square().mean()).backward()
    grads = [p.grad for p in bilm.lstm.parameters()]
    assert all(
        g.dtype == torch.float32 and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads
    )
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        assert len(bilm.eval()(ids)["layers"]) == 3


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_dropout_keeps_one_minus_p_and_rescales(p):
    from elmo_lm.model.lstm import dropout

    torch.manual_seed(0)
    x = torch.full((200_000,), 2.0, requires_grad=True)
    y = dropout(x, p)
    kept = y != 0
    if p < 1.0:
        assert torch.allclose(y[kept], torch.tensor(2.0 / (1.0 - p)))
    assert abs(kept.float().mean().item() - (1.0 - p)) < 0.005
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y / 2.0).detach())  # gradient: the same mask and scale
