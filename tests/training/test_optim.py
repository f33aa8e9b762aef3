"""RowAdagrad is torch's Adagrad: the same updates (to float32 rounding), state and checkpoints;
coalesce_rows is coalesce."""

from __future__ import annotations

import copy

import pytest
import torch

from elmo_lm.cpu import native, path
from elmo_lm.training.gradients import coalesce_rows
from elmo_lm.training.optim import RowAdagrad
from tests.cpu.calls import spy_kernels


@pytest.fixture(params=["native", "torch"])
def kernels(request, monkeypatch):
    """Each test runs with kernels.c's row loops and with torch operations only (the Adagrad
    test also as on an accelerator: padded rows, foreach); C runs on the native path only."""
    if request.param == "native" and native.kernels() is None:
        pytest.skip("no C compiler: kernels.c cannot be built here")
    ran = spy_kernels(monkeypatch)
    with path.use(request.param):
        yield request.param
    assert bool(ran) == (request.param == "native"), dict(ran)


def _params() -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(0)
    return [
        torch.nn.Parameter(torch.randn(6, 4, generator=g)),  # dense
        torch.nn.Parameter(torch.randn(3, generator=g)),  # dense
        torch.nn.Parameter(torch.randn(50, 3, generator=g)),  # sparse rows (softmax weight)
        torch.nn.Parameter(torch.randn(50, 1, generator=g)),  # sparse rows (softmax bias)
    ]


def _set_grads(params: list[torch.nn.Parameter], step: int) -> None:
    g = torch.Generator().manual_seed(100 + step)
    params[0].grad = torch.randn(6, 4, generator=g)
    params[1].grad = torch.randn(3, generator=g)
    rows = torch.randint(0, 50, (40,), generator=g)  # repeated rows: uncoalesced
    for p in params[2:]:
        values = torch.randn(40, p.shape[1], generator=g)
        p.grad = torch.sparse_coo_tensor(rows[None], values, p.shape)


@pytest.mark.parametrize("kernels", ["native", "torch", "accelerator"], indirect=True)
@pytest.mark.parametrize("lr_decay", [0.0, 0.1])
def test_row_adagrad_updates_as_torch_adagrad(lr_decay, kernels, monkeypatch):
    from elmo_lm.training import optim

    fused = []
    real = optim.adagrad
    monkeypatch.setattr(
        optim, "adagrad", lambda *a, **k: fused.append((k["fused"], k["foreach"])) or real(*a, **k)
    )
    ours, theirs = _params(), _params()
    kwargs = dict(lr=0.2, initial_accumulator_value=1.0, lr_decay=lr_decay)
    opt_ours, opt_theirs = RowAdagrad(ours, **kwargs), torch.optim.Adagrad(theirs, **kwargs)
    for step in range(4):
        _set_grads(ours, step)
        _set_grads(theirs, step)
        opt_ours.step()
        opt_theirs.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    on_cpu = kernels != "accelerator"  # the CPU's fused kernel, else foreach as on a GPU
    assert fused == [(on_cpu, not on_cpu)] * 4
    untouched = ~torch.isin(torch.arange(50), torch.cat([p.grad._indices()[0] for p in theirs[2:]]))
    assert untouched.any()  # rows never sampled keep their values
    state_ours, state_theirs = opt_ours.state_dict(), opt_theirs.state_dict()
    assert state_ours["param_groups"] == state_theirs["param_groups"]
    for i in range(4):
        assert state_ours["state"][i].keys() == state_theirs["state"][i].keys()
        assert float(state_ours["state"][i]["step"]) == float(state_theirs["state"][i]["step"]) == 4
        torch.testing.assert_close(state_ours["state"][i]["sum"], state_theirs["state"][i]["sum"])
    # A checkpoint of one loads into the other and continues alike.
    opt_theirs.load_state_dict(copy.deepcopy(state_ours))
    _set_grads(ours, 9)
    _set_grads(theirs, 9)
    opt_ours.step()
    opt_theirs.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_row_adagrad_weight_decay_takes_torchs_step():
    ours, theirs = _params()[:2], _params()[:2]
    opt_ours = RowAdagrad(ours, lr=0.1, weight_decay=0.01)
    opt_theirs = torch.optim.Adagrad(theirs, lr=0.1, weight_decay=0.01)
    for params in (ours, theirs):
        params[0].grad, params[1].grad = torch.ones(6, 4), torch.ones(3)
    opt_ours.step()
    opt_theirs.step()
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


def test_coalesce_rows_is_coalesce(kernels):
    g = torch.Generator().manual_seed(1)
    rows = torch.randint(0, 30, (100,), generator=g)
    grad = torch.sparse_coo_tensor(rows[None], torch.randn(100, 5, generator=g), (30, 5))
    ours, theirs = coalesce_rows(grad), grad.coalesce()
    assert ours.is_coalesced()
    assert torch.equal(ours._indices(), theirs._indices())
    torch.testing.assert_close(ours._values(), theirs._values())
    assert coalesce_rows(ours) is ours or torch.equal(coalesce_rows(ours)._values(), ours._values())


def test_clip_coalesces_gradients_sharing_their_rows_and_not(kernels):
    """The softmax's weight and bias gradients share one row table; a gradient with other
    entries gets its own."""
    from elmo_lm.training.gradients import clip_grad_norm

    g = torch.Generator().manual_seed(2)
    rows = torch.randint(0, 20, (30,), generator=g)
    other = torch.randint(0, 20, (30,), generator=g)
    params = [torch.nn.Parameter(torch.zeros(20, k)) for k in (3, 1, 2)]
    grads = [
        torch.sparse_coo_tensor(r[None], torch.randn(30, p.shape[1], generator=g), p.shape)
        for r, p in zip((rows, rows.clone(), other), params)
    ]
    for p, grad in zip(params, grads):
        p.grad = grad
    expected = [grad.coalesce().to_dense() for grad in grads]
    norm = clip_grad_norm(params, max_norm=1e9)
    torch.testing.assert_close(norm, torch.cat([e.flatten() for e in expected]).norm())
    for p, e in zip(params, expected):
        assert p.grad.is_coalesced()
        torch.testing.assert_close(p.grad.to_dense(), e)
