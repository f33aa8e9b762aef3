"""The sampled softmax against the full softmax and the log-uniform formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import elmo_lm.model.sampler as sampler_module
import elmo_lm.model.softmax as softmax_module
from elmo_lm.cpu import kernels, native, path
from elmo_lm.model.sampler import (
    draws_needed,
    expected_counts,
    first_distinct,
    log_uniform_candidates,
    log_uniform_probs,
)
from elmo_lm.model.softmax import Softmax, full_softmax_nll, sampled_softmax_nll


def _problem(n=12, p=6, v=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, p, generator=g)
    targets = torch.randint(0, v, (n,), generator=g)
    weight = torch.randn(v, p, generator=g)
    bias = torch.randn(v, 1, generator=g)
    return inputs, targets, weight, bias


def test_all_classes_sampled_without_correction_is_the_full_softmax():
    inputs, targets, weight, bias = _problem()
    sampled = torch.arange(weight.shape[0])
    nll = sampled_softmax_nll(inputs, targets, weight, bias, sampled, None, None)
    full = F.cross_entropy(inputs @ weight.t() + bias.squeeze(1), targets, reduction="none")
    torch.testing.assert_close(nll, full)
    torch.testing.assert_close(full_softmax_nll(inputs, targets, weight, bias), full)
    with torch.no_grad():  # chunked path
        chunked = full_softmax_nll(inputs, targets, weight, bias, max_elements=60)
    torch.testing.assert_close(chunked, full)


def test_accidental_hits_are_removed():
    inputs, targets, weight, bias = _problem()
    sampled = torch.tensor([3, 7, 11])
    targets[:4] = torch.tensor([3, 7, 11, 5])
    nll = sampled_softmax_nll(inputs, targets, weight, bias, sampled, None, None)
    logits = inputs @ weight.t() + bias.squeeze(1)
    for i in range(len(targets)):
        t = int(targets[i])
        others = [int(s) for s in sampled if int(s) != t]
        row = logits[i, [t, *others]]
        torch.testing.assert_close(nll[i], -row.log_softmax(0)[0])
    kept = sampled_softmax_nll(inputs, targets, weight, bias, sampled, None, None, False)
    assert (kept[:3] > nll[:3]).all()  # the hit counted as a negative raises the loss
    torch.testing.assert_close(kept[3:], nll[3:])


def test_correction_subtracts_log_expected_count():
    inputs, targets, weight, bias = _problem()
    sampled = torch.tensor([0, 2, 9, 20])
    q_true, q_sampled = torch.rand(len(targets)) + 0.1, torch.rand(4) + 0.1
    nll = sampled_softmax_nll(inputs, targets, weight, bias, sampled, q_true.log(), q_sampled.log())
    logits = inputs @ weight.t() + bias.squeeze(1)
    for i in range(len(targets)):
        t = int(targets[i])
        row = [logits[i, t] - q_true[i].log()]
        row += [logits[i, s] - q_sampled[j].log() for j, s in enumerate(sampled) if int(s) != t]
        torch.testing.assert_close(nll[i], -torch.stack(row).log_softmax(0)[0])


def test_log_uniform_formula():
    v = 1000
    probs = log_uniform_probs(torch.arange(v), v)
    assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-9)
    k = 41
    assert math.isclose(float(probs[k]), math.log((k + 2) / (k + 1)) / math.log(v + 1))
    # Without duplicates: S * p; with rejected duplicates: 1 - (1 - p) ** tries.
    torch.testing.assert_close(expected_counts(probs[:3], 8, 8), probs[:3] * 8)
    torch.testing.assert_close(expected_counts(probs[:3], 20, 8), 1 - (1 - probs[:3]) ** 20)


def test_candidates_are_distinct_and_log_uniform():
    g = torch.Generator().manual_seed(0)
    ids, tries = log_uniform_candidates(200, 1000, generator=g)
    assert len(ids) == 200 and len(set(ids.tolist())) == 200
    assert ids.min() >= 0 and ids.max() < 1000 and tries >= 200
    # The expected number of distinct ids after `tries` draws is the sum of expected counts.
    probs = log_uniform_probs(torch.arange(1000), 1000)
    expected = float(expected_counts(probs, tries, 200).sum())
    assert abs(expected - 200) < 20
    # Low ids are drawn first and most often: id 0 has p = 0.1.
    assert 0 in ids.tolist()


def test_candidates_need_more_classes_than_samples():
    with pytest.raises(ValueError, match="range_max"):
        log_uniform_candidates(10, 10)
    with pytest.raises(ValueError, match="n_negative_samples"):
        Softmax(10, 4, n_negative_samples=10, sampled=True)


def test_sampled_gradient_is_sparse_and_touches_few_rows():
    softmax = Softmax(5000, 8, n_negative_samples=64).train()
    inputs = torch.randn(2, 5, 8, requires_grad=True)
    targets = torch.randint(0, 5000, (2, 5))
    targets[0, 0] = -1
    loss, count = softmax(inputs, targets)
    assert count == 9
    loss.backward()
    grad = softmax.weight.grad
    assert grad.is_sparse and grad.coalesce()._nnz() <= 9 + 64
    assert softmax.bias.grad.is_sparse
    assert inputs.grad[0, 0].abs().sum() == 0  # a -1 target counts nothing


def test_eval_mode_is_the_exact_full_softmax():
    softmax = Softmax(50, 4, n_negative_samples=8).eval()
    inputs, targets = torch.randn(7, 4), torch.randint(0, 50, (7,))
    targets[2] = -1
    total, count = softmax(inputs, targets)
    keep = targets >= 0
    full = F.cross_entropy(
        inputs[keep] @ softmax.weight.t() + softmax.bias.squeeze(1), targets[keep], reduction="sum"
    )
    assert count == 6
    torch.testing.assert_close(total, full)


def _stream_reference(draws: list[int], num_sampled: int) -> tuple[list[int], int]:
    """TF's unique sampler read draw by draw: keep unseen ids until there are enough."""
    seen: list[int] = []
    for tries, d in enumerate(draws, 1):
        if d not in seen:
            seen.append(d)
            if len(seen) == num_sampled:
                return seen, tries
    raise AssertionError("the stream ran out")


def _log_uniform_stream(seed: int, n: int, range_max: int) -> list[int]:
    u = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ids = ((u * math.log1p(range_max)).exp().long() - 1).clamp_(0, range_max - 1)
    return ids.tolist()


@pytest.mark.parametrize("num_sampled, range_max", [(200, 1000), (900, 1000), (64, 50_000)])
def test_candidates_are_the_first_distinct_ids_of_the_draw_stream(num_sampled, range_max):
    ids, tries = log_uniform_candidates(
        num_sampled, range_max, generator=torch.Generator().manual_seed(7)
    )
    stream = _log_uniform_stream(7, draws_needed(num_sampled, range_max), range_max)
    expected, expected_tries = _stream_reference(stream, num_sampled)
    assert ids.tolist() == expected
    assert int(tries) == expected_tries and tries.shape == ()


@pytest.mark.parametrize("name", ["native", "torch"])  # the CPU's paths, which read on
def test_a_pass_that_falls_short_reads_on_in_the_same_stream(monkeypatch, name):
    # Too few draws per pass: the sampler must read further passes of the same stream.
    monkeypatch.setattr(sampler_module, "draws_needed", lambda s, v: s)
    with path.use(name):
        ids, tries = log_uniform_candidates(300, 1000, generator=torch.Generator().manual_seed(3))
    expected, expected_tries = _stream_reference(_log_uniform_stream(3, 300 * 20, 1000), 300)
    assert int(tries) > 300  # more than one pass was needed
    assert ids.tolist() == expected and int(tries) == expected_tries


@pytest.mark.parametrize("num_sampled, range_max, m", [(200, 1000, 2000), (300, 1000, 300)])
def test_the_compiled_stream_reader_equals_first_distinct(num_sampled, range_max, m):
    """kernels.c's loop (the CPU's sampler) and the torch version give the same ids and tries,
    and the same verdict on a stream too short to hold num_sampled distinct ids (the loop stops
    counting at num_sampled)."""
    if native.kernels() is None:
        pytest.skip("no C compiler: kernels.c cannot be built here")
    for seed in range(20):
        draws = torch.tensor(_log_uniform_stream(seed, m, range_max))
        with path.use("native"):
            ids, tries, found = kernels.first_distinct(draws, num_sampled, range_max)
        ref_ids, ref_tries, ref_found = first_distinct(draws, num_sampled, range_max)
        assert min(int(ref_found), num_sampled) == int(found)
        if int(found) >= num_sampled:
            assert ids.tolist() == ref_ids.tolist() and int(tries) == int(ref_tries)
        else:
            assert ids[: int(found)].tolist() == _stream_reference_prefix(draws.tolist())


@pytest.mark.parametrize("vector_unit", ["native", "portable"])
def test_the_compiled_softmax_equals_torch(vector_unit, monkeypatch, tmp_path):
    """kernels.c's row softmax (the sampled softmax's probabilities on the CPU), with the
    processor's vector code and with the portable C loops used where there is no AVX-512: the
    float64 softmax to float32 rounding, -inf columns exactly 0, widths with a tail past a
    multiple of 16, one thread or two."""
    import platform

    if vector_unit == "portable":
        if platform.machine() not in ("x86_64", "AMD64"):
            pytest.skip("the portable loops are what this machine builds anyway")
        monkeypatch.setenv("ELMO_LM_CACHE", str(tmp_path))
        monkeypatch.setattr(native, "FLAGS", [*native.FLAGS, "-mno-avx512f"])
        native.kernels.cache_clear()
    try:
        lib = native.kernels()
        if lib is None:
            pytest.skip("no C compiler: kernels.c cannot be built here")
        gen = torch.Generator().manual_seed(0)
        for width, threads in [(8320, 2), (8320, 1), (37, 2)]:
            x = torch.randn(13, width, generator=gen) * 6
            x[:, -5:] = -math.inf
            x[4, 2] = -math.inf
            want = torch.softmax(x.double(), 1)
            got = x.clone()
            with path.use("native"):
                assert kernels.softmax_rows_(got, threads) is got  # in place
            torch.testing.assert_close(got.double(), want, atol=1e-7, rtol=2e-5)
            assert (got[:, -5:] == 0).all() and got[4, 2] == 0
    finally:
        native.kernels.cache_clear()


def _stream_reference_prefix(stream: list[int]) -> list[int]:
    seen: dict[int, None] = {}
    for x in stream:
        seen.setdefault(x, None)
    return list(seen)


def test_draws_needed_falls_short_almost_never():
    # The expected distinct count less 8 standard deviations reaches S, so 300 seeds all
    # find enough in the first pass (a pass that falls short would read on, see above).
    s, v = 500, 2000
    m = draws_needed(s, v)
    tries = []
    for seed in range(300):
        _, used, found = first_distinct(torch.tensor(_log_uniform_stream(seed, m, v)), s, v)
        assert found >= s
        tries.append(int(used))
    assert m < 1.3 * max(tries)  # and not wastefully many draws


def _dense_reference(inputs, targets, weight, bias, sampled, log_q_true, log_q_sampled):
    """The sampled softmax with a dense accidental-hit mask and autograd's logsumexp."""
    true = (inputs * weight[targets]).sum(-1) + bias[targets, 0] - log_q_true
    logits = inputs @ weight[sampled].t() + bias[sampled, 0] - log_q_sampled
    logits = logits.masked_fill(sampled[None, :] == targets[:, None], float("-inf"))
    return torch.logaddexp(true, logits.logsumexp(-1)) - true


@pytest.mark.parametrize("name", ["native", "torch", "accelerator"])
def test_fused_loss_and_gradients_equal_the_dense_reference(name, monkeypatch):
    """On every path; the row softmax runs in C on the native path only."""
    from tests.cpu.calls import spy_kernels

    ran = spy_kernels(monkeypatch)
    inputs, targets, weight, bias = _problem(n=40, p=8, v=300, seed=1)
    sampled, tries = log_uniform_candidates(60, 300, generator=torch.Generator().manual_seed(1))
    targets[:10] = sampled[:10]  # accidental hits
    log_q = [
        expected_counts(log_uniform_probs(i, 300), tries, 60).log().float()
        for i in (targets, sampled)
    ]
    ran.clear()  # the draw above ran on the run's own path
    grad_out = torch.rand(40)
    results = []
    for fn in (sampled_softmax_nll, _dense_reference):
        x, w, b = (t.clone().requires_grad_() for t in (inputs, weight, bias))
        with path.use(name):
            nll = fn(x, targets, w, b, sampled, *log_q)
        nll.backward(grad_out)
        dense = [g.to_dense() if g.is_sparse else g for g in (x.grad, w.grad, b.grad)]
        results.append((nll.detach(), *dense))
    for ours, reference in zip(*results):
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    in_c = name == "native" and native.kernels() is not None
    assert dict(ran) == ({"softmax_rows_": 1} if in_c else {})


@pytest.mark.parametrize("name", ["native", "torch", "accelerator"])
def test_no_dense_hit_mask_and_no_host_synchronisation(monkeypatch, name):
    from torch.utils._python_dispatch import TorchDispatchMode

    # As on an accelerator: the sampler's check is left to an asynchronous assertion.
    sampler = softmax_module.log_uniform_candidates
    monkeypatch.setattr(
        softmax_module,
        "log_uniform_candidates",
        lambda *args, **kwargs: sampler(*args, **kwargs, read_on=False),
    )

    n, s, v = 48, 256, 5000

    class Record(TorchDispatchMode):
        ops: list[tuple[str, torch.Size, torch.dtype]] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, tuple | list) else [out]:
                if isinstance(t, torch.Tensor):
                    self.ops.append((str(func), t.shape, t.dtype))
            if "_local_scalar_dense" in str(func) or "nonzero" in str(func):
                self.ops.append((str(func), torch.Size(), torch.bool))
            return out

    softmax = Softmax(v, 8, n_negative_samples=s).train()
    inputs = torch.randn(2, n // 2, 8, requires_grad=True)
    targets = torch.randint(0, v, (2, n // 2))
    targets[0, 0] = -1
    softmax(inputs, targets)  # draws_needed is worked out once per (S, V), on the host
    with path.use(name), Record():
        loss, count = softmax(inputs, targets)
        loss.backward()
    names = [op for op, _, _ in Record.ops]
    assert not [op for op in names if "_local_scalar_dense" in op or "nonzero" in op], names
    assert not [o for o in Record.ops if o[2] == torch.bool and o[1].numel() >= n * s]
    assert int(count) == n - 1


def test_backward_can_run_twice_with_retain_graph():
    inputs, targets, weight, bias = _problem()
    x = inputs.clone().requires_grad_()
    nll = sampled_softmax_nll(x, targets, weight, bias, torch.tensor([1, 2, 3]), None, None)
    nll.sum().backward(retain_graph=True)
    first = x.grad.clone()
    nll.sum().backward()  # the saved matrix is read, never overwritten
    torch.testing.assert_close(x.grad, 2 * first)


@pytest.mark.parametrize("n_sampled", [127, 128, 200])  # 129, 128 and 56 extra columns
def test_extra_columns_do_not_change_the_result(n_sampled):
    """The target's column and the -inf columns that align the rows add nothing: loss and
    gradients equal the dense reference, also with logits far beyond exp's range."""
    inputs, targets, weight, bias = _problem(n=30, p=8, v=400, seed=3)
    bias = bias + 500.0  # logits in the hundreds: exp of them alone would overflow
    sampled = torch.randperm(400, generator=torch.Generator().manual_seed(4))[:n_sampled]
    targets[:5] = sampled[:5]
    grad_out = torch.rand(30)
    results = []
    for fn in (sampled_softmax_nll, _dense_reference):
        x, w, b = (t.clone().requires_grad_() for t in (inputs, weight, bias))
        nll = fn(x, targets, w, b, sampled, torch.zeros(30), torch.zeros(n_sampled))
        nll.backward(grad_out)
        dense = [g.to_dense() if g.is_sparse else g for g in (x.grad, w.grad, b.grad)]
        results.append((nll.detach(), *dense))
    assert torch.isfinite(results[0][0]).all()
    for ours, reference in zip(*results):
        torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)


def test_forward_pair_is_two_forward_calls_with_one_sparse_gradient():
    """Both directions at once draw the same negatives as two calls (forward LM first), give the
    same losses and gradients, and leave the weights one sparse gradient, not a sum of two."""
    g = torch.Generator().manual_seed(5)
    fwd, bwd = torch.randn(3, 7, 8, generator=g), torch.randn(3, 7, 8, generator=g)
    fwd_t, bwd_t = (
        torch.randint(0, 500, (3, 7), generator=g),
        torch.randint(0, 500, (3, 7), generator=g),
    )
    fwd_t[0, -1] = bwd_t[2, -1] = -1  # no target there
    results = []
    for pair in (True, False):
        torch.manual_seed(0)
        softmax = Softmax(500, 8, n_negative_samples=50)
        softmax.train()
        torch.manual_seed(1)
        if pair:
            out = softmax.forward_pair(fwd, fwd_t, bwd, bwd_t)
        else:
            out = (*softmax(fwd, fwd_t), *softmax(bwd, bwd_t))
        (out[0] + out[2]).backward()
        grad = softmax.weight.grad
        results.append((out, grad))
    (pair_out, pair_grad), (two_out, two_grad) = results
    for a, b in zip(pair_out, two_out):
        torch.testing.assert_close(a, b)
    assert pair_grad.is_sparse and pair_grad._nnz() == 2 * (21 + 50)  # one lookup of both
    torch.testing.assert_close(pair_grad.to_dense(), two_grad.to_dense())
