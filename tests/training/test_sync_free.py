"""An accelerator's training step reads nothing on the host: fixed shapes, one stream of kernels.

There is no accelerator here, so the step runs on the CPU on the accelerator path
(``path.use("accelerator")``: exactly the code a GPU runs, torch operations only), and every
operation it dispatches is recorded: none may read a value back to the host (``.item()``,
``.tolist()``, ``bool()``: ``_local_scalar_dense``) or make a shape from the data (``nonzero``,
``unique``). The step's result must equal the CPU's paths' (native and torch), which
deduplicate tokens, trim the char CNN's windows and coalesce the sparse rows.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from elmo_lm.cpu import native, path
from elmo_lm.model import lstm, sampler, softmax
from elmo_lm.training import gradients, optim
from elmo_lm.training.gradients import clip_grad_norm, padded_rows
from elmo_lm.training.module import ElmoLM
from elmo_lm.training.synthetic import zipf_batch
from tests.cpu.calls import spy_kernels

VOCAB = ["<S>", "</S>", "<UNK>"] + [f"w{i}" for i in range(60)]
HOST_READS = ("_local_scalar_dense", "nonzero", "unique", "_unique")


class Record(TorchDispatchMode):
    """The operations dispatched; reads of the optimizer's step counters are named apart: torch
    keeps those on the CPU on accelerators too (foreach Adagrad reads them there, no sync)."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []
        self.step_counters: set[int] = set()  # data_ptr()s

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if "_local_scalar_dense" in name and args[0].data_ptr() in self.step_counters:
            name = "read of a CPU step counter"
        self.ops.append(name)
        return func(*args, **(kwargs or {}))


def _batch() -> dict:
    g = torch.Generator().manual_seed(1)
    chars = torch.zeros(2, 3, 5, 50, dtype=torch.long)
    lengths = torch.randint(1, 9, (2, 3, 5), generator=g)
    for idx in lengths.flatten().nonzero().flatten().tolist():  # tokens of 1-8 characters
        d, b, t = idx // 15, idx // 5 % 3, idx % 5
        n = int(lengths[d, b, t])
        chars[d, b, t, : n + 2] = torch.randint(3, 200, (n + 2,), generator=g)
        chars[d, b, t, n + 2 :] = 261  # the padding character (+1-shifted)
    chars[0, 1] = chars[0, 0]  # repeated tokens
    targets = torch.randint(0, len(VOCAB), (2, 3, 5), generator=g)
    return {
        "fwd_chars": chars[0],
        "bwd_chars": chars[1],
        "fwd_targets": targets[0],
        "bwd_targets": targets[1],
    }


def _step(tiny_options, record: Record | None):
    options = tiny_options()
    options.n_negative_samples_batch = 16
    options.n_tokens_vocab = len(VOCAB)
    torch.manual_seed(0)
    module = ElmoLM(options.to_dict(), VOCAB).train()
    opt = module.configure_optimizers()
    if record is not None:
        record.step_counters = {s["step"].data_ptr() for s in opt.state.values()}
    batch = {**_batch(), "stream_id": 0, "reset": True}
    module._log_step = False  # no Trainer to log to (test_lightning_step logs)
    torch.manual_seed(5)
    with record or torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        loss = module.training_step(batch, 0)  # the gradient of loss * unroll_steps
        loss.backward()
        module.on_after_backward()
        clip_grad_norm(module.parameters(), 1e-3)  # small: the clip scales
        opt.step()
    return loss.detach(), {n: p.detach().clone() for n, p in module.named_parameters()}


def _spy(monkeypatch, module, name: str, calls: list, record=lambda *a, **k: None) -> None:
    """Counts the calls of ``module.name`` in ``calls`` (what ``record`` says of each)."""
    real = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(record(*args, **kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)


@pytest.mark.parametrize("cpu_path", ["native", "torch"])
def test_a_training_step_reads_nothing_on_the_host(tiny_options, monkeypatch, cpu_path):
    with path.use(cpu_path):
        cpu_loss, cpu_params = _step(tiny_options, None)
    ran = spy_kernels(monkeypatch)
    steps, torch_distinct, adagrad = [], [], []
    _spy(monkeypatch, lstm.NativeLayer, "apply", steps, lambda *a: "native")
    _spy(monkeypatch, lstm.LstmSteps, "apply", steps, lambda *a: "torch")
    _spy(monkeypatch, sampler, "first_distinct", torch_distinct)
    _spy(monkeypatch, optim, "adagrad", adagrad, lambda *a, **k: (k["fused"], k["foreach"]))
    sparse_lookups, row_buffers = [], []  # the softmax's gradient: fixed-shape row buffers
    _spy(monkeypatch, softmax, "sparse_rows", sparse_lookups)
    _spy(monkeypatch, gradients, "set_row_gradients", row_buffers)
    monkeypatch.setattr(native, "kernels", lambda: pytest.fail("the C library was asked for"))
    record = Record()
    with path.use("accelerator"):
        loss, params = _step(tiny_options, record)
    assert len(record.ops) > 100
    reads = [op for op in record.ops if any(name in op for name in HOST_READS)]
    assert not reads, reads
    # The accelerator's code: torch's LSTM steps, row softmax and sampler, foreach Adagrad.
    assert not ran and steps == ["torch"] * len(steps) and len(steps) >= 2
    assert any("aten._softmax" in op for op in record.ops)
    assert len(torch_distinct) == 2  # one draw of negatives per direction
    assert adagrad == [(False, True)]
    assert not sparse_lookups and len(row_buffers) == 1
    assert not any("mkldnn" in op or "_fused_adagrad" in op for op in record.ops)
    torch.testing.assert_close(loss, cpu_loss, atol=1e-5, rtol=1e-5)
    for name, value in params.items():
        torch.testing.assert_close(value, cpu_params[name], atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize("entries", [[4, 1, 4, 0, 7, 1, 4], [3], [0, 0, 2]])
def test_padded_rows_sum_to_the_coalesced_gradient(entries):
    g = torch.Generator().manual_seed(len(entries))
    values = torch.randn(len(entries), 3, generator=g)
    grad = torch.sparse_coo_tensor(torch.tensor([entries]), values, (9, 3))
    rows, sums = padded_rows(grad)
    distinct = sorted(set(entries))
    assert rows.shape == (len(entries),) and sums.shape == values.shape
    assert rows[: len(distinct)].tolist() == distinct
    assert (sums[len(distinct) :] == 0).all()
    want = grad.coalesce()
    torch.testing.assert_close(sums[: len(distinct)], want._values())
    dense = torch.zeros(9, 3).index_add_(0, rows, sums)
    torch.testing.assert_close(dense, want.to_dense())


def test_row_buffer_gradients_accumulate_over_backward_passes(tiny_options):
    """accumulate_grad_batches: two windows' softmax gradients are summed on the accelerator
    path as autograd sums the CPU path's sparse ones."""
    options = tiny_options()
    options.n_negative_samples_batch = 16
    options.n_tokens_vocab = len(VOCAB)
    grads = {}
    for name in ("native", "accelerator"):
        with path.use(name):
            torch.manual_seed(0)
            module = ElmoLM(options.to_dict(), VOCAB).train()
            module._log_step = False
            for step in range(2):
                torch.manual_seed(5 + step)
                batch = {**_batch(), "stream_id": 0, "reset": True}
                module.training_step(batch, step).backward()
                module.on_after_backward()
            grads[name] = [p.grad.to_dense() for p in module.softmax_parameters()]
    for got, want in zip(grads["accelerator"], grads["native"]):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


KINDS = {  # the models beside the character biLM (options changed from conf/model/tiny.yaml)
    "word": {"char_cnn": None},
    "tied": {"char_cnn": None, "share_embedding_softmax": True},
    "forward": {"bidirectional": False},
}


def _kind_step(tiny_options, kind: str, record: Record | None):
    options = tiny_options()
    options.n_negative_samples_batch = 16
    options.n_tokens_vocab = len(VOCAB)
    for key, value in KINDS[kind].items():
        setattr(options, key, value)
    torch.manual_seed(0)
    module = ElmoLM(options.to_dict(), VOCAB).train()
    opt = module.configure_optimizers()
    if record is not None:
        record.step_counters = {s["step"].data_ptr() for s in opt.state.values()}
    # As the loader gives it: a word-input LM's batch has no char ids.
    batch = zipf_batch(VOCAB, 3, 5, seed=2, chars=not module.options.word_inputs)
    batch = {**batch, "stream_id": 0, "reset": True}
    module._log_step = False
    torch.manual_seed(5)
    with record or torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        loss = module.training_step(batch, 0)
        loss.backward()
        module.on_after_backward()
        clip_grad_norm(module.parameters(), 1e-3)
        opt.step()
    return loss.detach(), {n: p.detach().clone() for n, p in module.named_parameters()}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_word_input_or_forward_lms_step_reads_nothing_on_the_host(
    tiny_options, monkeypatch, kind
):
    """No host read, the CPU's numbers; a tied embedding and softmax get one gradient from the
    row buffers: the softmax's rows and the inputs' (3 x 5 per direction) in one sort."""
    with path.use("torch"):
        cpu_loss, cpu_params = _kind_step(tiny_options, kind, None)
    row_buffers = []
    _spy(monkeypatch, gradients, "set_row_gradients", row_buffers, lambda w, b, ids, g: len(ids))
    record = Record()
    with path.use("accelerator"):
        loss, params = _kind_step(tiny_options, kind, record)
    reads = [op for op in record.ops if any(name in op for name in HOST_READS)]
    assert not reads, reads
    directions = 1 if kind == "forward" else 2
    softmax_rows = directions * (15 + 16)
    assert row_buffers == [softmax_rows + (directions * 15 if kind == "tied" else 0)]
    assert ("bilm.word_embedding.weight" in params) == (kind != "forward")
    assert ("softmax.weight" in params) == (kind != "tied")  # tied: one matrix
    torch.testing.assert_close(loss, cpu_loss, atol=1e-5, rtol=1e-5)
    for name, value in params.items():
        torch.testing.assert_close(value, cpu_params[name], atol=1e-6, rtol=1e-5, msg=name)
