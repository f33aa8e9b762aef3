"""The oneDNN products equal torch's (float32 rounding apart), with their gradients."""

from __future__ import annotations

import pytest
import torch

from elmo_lm.cpu import matmul, path

needs_onednn = pytest.mark.skipif(not matmul.ONEDNN, reason="torch built without oneDNN")


@pytest.fixture(autouse=True)
def native_path():
    """The products of these tests are the native path's, whatever ELMO_LM_PATH says."""
    with path.use("native"):
        yield


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))


@needs_onednn
@pytest.mark.parametrize(
    "m, k, n, transposed",
    [
        (300, 96, 200, False),
        (300, 96, 200, True),  # many rows: the softmax's exps.t() layout
        (64, 640, 1024, True),  # few rows: the LSTM's h.t() of a weight gradient
        # Varying sizes are cut at multiples of SHAPE_STEP, the rest computed by torch:
        (1125, 80, 128, False),  # rows (the char CNN's windows)
        (80, 1125, 128, True),  # inner dimension, few rows (the char CNN's weight gradient)
        (600, 300, 65, True),  # inner dimension, many rows
        (100, 256, 256, False),  # fewer rows than SHAPE_STEP: whole
    ],
)
@pytest.mark.parametrize("bias", [False, True])
def test_addmm_equals_torch_and_runs_on_onednn(m, k, n, transposed, bias):
    torch.manual_seed(0)
    a = torch.randn(k, m).t() if transposed else torch.randn(m, k)
    b = torch.randn(k, n)
    c = torch.randn(n) if bias else None
    assert matmul.uses_onednn(a, b)
    expected = torch.mm(a, b) if c is None else torch.addmm(c, a, b)
    _close(matmul.addmm(c, a, b), expected)


@needs_onednn
def test_linear_gradients_equal_torch():
    torch.manual_seed(0)
    x = torch.randn(256, 128, requires_grad=True)
    w = torch.randn(128, 192, requires_grad=True)
    b = torch.randn(192, requires_grad=True)
    out = matmul.linear(x, w, b)
    assert out.grad_fn is not None and "Linear" in type(out.grad_fn).__name__
    grad = torch.randn_like(out)
    out.backward(grad)
    got = [t.grad.clone() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    torch.addmm(b, x, w).backward(grad)
    for g, t in zip(got, (x, w, b)):
        _close(g, t.grad)


def test_small_products_other_dtypes_and_autocast_stay_with_torch():
    small = torch.randn(8, 8)
    assert not matmul.uses_onednn(small, small)
    big = torch.randn(512, 512)
    assert not matmul.uses_onednn(big.double(), big.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not matmul.uses_onednn(big, big)
        assert matmul.linear(big, big).dtype == torch.bfloat16  # autocast's product
    grad_mode = big.clone().requires_grad_()
    assert not matmul.uses_onednn(grad_mode, big)  # no autograd there: linear() instead


@needs_onednn
@pytest.mark.parametrize(
    "name, onednn", [("native", False), ("torch", True), ("accelerator", True)]
)
def test_switched_off_by_the_path(name, onednn):
    """oneDNN runs on the native path only, and not there with ELMO_LM_ONEDNN=0 (onednn=False):
    the products are then torch's."""
    torch.manual_seed(0)
    a, b = torch.randn(300, 96), torch.randn(96, 200)
    with path.use("native"):
        assert matmul.uses_onednn(a, b)
    with path.use(name, onednn=onednn):
        assert not matmul.uses_onednn(a, b) and not matmul.fits_onednn(a, b)
        assert torch.equal(matmul.addmm(None, a, b), torch.mm(a, b))
        x = a.clone().requires_grad_()
        assert matmul.linear(x, b).grad_fn.name() == "MmBackward0"  # torch's, not _Linear


@needs_onednn
@pytest.mark.parametrize("add", [False, True])
def test_bmm_equals_torch_per_batch_entry(add):
    torch.manual_seed(0)
    a = torch.randn(2, 32, 128)  # the LSTM's per-step (directions, rows, projection) inputs
    b = torch.randn(2, 256, 4096)[:, :128]  # a slice of the (2, 2P, 4H) weight
    z = torch.randn(2, 32, 4096) if add else None
    assert matmul.uses_onednn(a[0], b[0])
    expected = torch.bmm(a, b) if z is None else torch.baddbmm(z, a, b)
    _close(matmul.bmm(a, b, z), expected)
