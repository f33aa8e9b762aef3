"""StepAudit finds what an accelerator's step may not do; the memory and FLOP counts are exact
on functions whose answer is known."""

from __future__ import annotations

import pytest
import torch

from elmo_lm.training.audit import (
    MemoryTracker,
    StepAudit,
    StepAuditError,
    estimate_peak_memory,
    executed_flops,
)
from elmo_lm.training.synthetic import synthetic_vocab, zipf_batch


def _kinds(audit: StepAudit) -> list[tuple[str, str]]:
    return [(op.name, audit.kind(op)) for op in audit.ops]


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_host_reads_are_found(device):
    x = torch.ones(4, 3, device=device)
    with StepAudit(device) as audit:
        (x > 0).any().item()  # placeholders on meta
        (x > 0).nonzero()
        x[x[:, 0] > 0]
        x.flatten().repeat_interleave(torch.ones(12, dtype=torch.long, device=device))
    reads = [op.name.split(".")[1] for op in audit.host_reads]
    assert reads == ["_local_scalar_dense", "nonzero", "index", "repeat_interleave"]
    assert audit.counts()["device_copy"] == 0


def test_a_fixed_size_repeat_is_no_host_read():
    x = torch.ones(3)
    with StepAudit("cpu") as audit:
        x.repeat_interleave(torch.tensor([1, 2, 1]), output_size=4)
    assert not audit.host_reads


def test_fail_names_the_read_and_where_it_was_made():
    x = torch.ones(3, device="meta")
    with pytest.raises(StepAuditError, match=r"_local_scalar_dense") as error:
        with StepAudit("meta", fail=True):
            float(x.sum())
    assert "test_audit.py" in str(error.value)


def test_copies_between_devices_are_found():
    x = torch.ones(3, device="meta")
    with StepAudit("meta") as audit:
        x.to("cpu")  # a placeholder answers on meta
        x + torch.tensor(1.0)  # a CPU tensor into a meta operation
        x.new_zeros(3).copy_(torch.ones(3))
        x.to(torch.float64)  # same device: a kernel
    assert [op.name for op in audit.device_copies] == [
        "aten._to_copy.default",
        "aten.add.Tensor",
        "aten.copy_.default",
    ]
    assert audit.kernels[-1].name == "aten._to_copy.default"


def test_registered_step_counters_may_be_read_on_the_host():
    param = torch.nn.Parameter(torch.ones(3, device="meta"))
    opt = torch.optim.Adagrad([param], foreach=True)
    param.grad = torch.ones(3, device="meta")
    counters = [s["step"] for s in opt.state.values()]
    assert counters and all(c.device.type == "cpu" for c in counters)
    with StepAudit("meta", allowed=counters, fail=True) as audit:
        opt.step()
    counts = audit.counts()
    assert counts["allowed_read"] >= 1 and counts["host_read"] == counts["device_copy"] == 0
    assert counts["host"] >= 1  # the counters' own arithmetic is no kernel
    assert counts["kernel"] >= 3
    with pytest.raises(StepAuditError, match="_local_scalar_dense"):  # unregistered: a read
        with StepAudit("meta", fail=True):
            opt.step()


def test_kernel_like_operations_are_counted_exactly():
    x = torch.randn(4, 4)
    with StepAudit("cpu") as audit:
        y = (x.t() * 2).sum(0)  # t: a view; mul, sum
        z = y.view(2, 2) + 1  # view; add
        z.detach()
        torch.empty(3)
        z[0].add_(1)  # select: a view; add_
        z.clone()
    assert [name for name, kind in _kinds(audit) if kind == "kernel"] == [
        "aten.mul.Tensor",
        "aten.sum.dim_IntList",
        "aten.add.Tensor",
        "aten.add_.Tensor",
        "aten.clone.default",
    ]
    assert audit.counts()["free"] == 5


def test_host_only_operations_of_a_device_step_are_no_kernels():
    x = torch.ones(3, device="meta")
    with StepAudit("meta") as audit:
        x * 2
        torch.zeros(2) + 1  # all on the host CPU
    assert [kind for _, kind in _kinds(audit)] == ["kernel", "host", "host"]


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_peak_memory_of_a_known_function(device):
    n = 1000 * 1000 * 4  # bytes of a (1000, 1000) float32

    def fn():
        x = torch.ones(1000, 1000, device=device)
        y = x * 2
        z = y + 1  # x, y, z live: the peak
        del y
        z.add_(1)  # in place: nothing new
        w = z.view(-1) * 3  # x, z, w
        return w

    assert estimate_peak_memory(fn) == 3 * n
    baseline = [torch.ones(1000, 1000, device=device)]
    assert estimate_peak_memory(fn, baseline) == 4 * n
    assert estimate_peak_memory(lambda: torch.ones(3), granularity=512) == 512


def test_memory_is_freed_and_storages_count_once():
    with MemoryTracker() as tracker:
        x = torch.ones(250, device="meta")  # 1,000 bytes
        views = [x[1:], x.view(5, 50), x.t()]
        del x
        assert tracker.current == 1000
        del views
    assert tracker.current == 0 and tracker.peak == 1000


def test_flops_of_a_product():
    a, b = torch.ones(8, 16, device="meta"), torch.ones(16, 4, device="meta")
    assert executed_flops(lambda: a @ b) == 2 * 8 * 16 * 4


def test_a_zipf_batch_has_the_loaders_layout():
    vocab = synthetic_vocab(500)
    assert len(set(vocab)) == 500
    batch = zipf_batch(vocab, 3, 5)
    assert batch["fwd_chars"].shape == (3, 5, 50) and batch["fwd_targets"].shape == (3, 5)
    torch.testing.assert_close(batch["fwd_targets"][:, :-1], batch["bwd_targets"].flip(1)[:, 1:])
    assert batch["fwd_targets"].min() >= 3
