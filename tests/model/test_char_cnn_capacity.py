"""The accelerator path on the loader's distinct tokens (``tokens``, ``token_index``): the CPU
paths' numbers, about their work (executed FLOPs), and no tensor made off the module's device."""

import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from elmo_lm.cpu import path
from elmo_lm.data.packing import CharIdCache, packed_windows, window_batch
from elmo_lm.data.streams import TrainStream
from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.model.bilm import BiLM
from tests.helpers import ROOT, model_config

SAMPLE = ROOT / "data" / "sample" / "train.txt"


def sample_batch_of(batch_size: int) -> dict:
    """A training batch of real text: the sample corpus, T = 20, as conf/data/sample."""
    vocab = Vocabulary.build([str(SAMPLE)], 1, None)
    stream = TrainStream(str(SAMPLE), vocab, 10**6, batch_size=batch_size, unroll_steps=20)
    return next(itertools.islice(iter(stream), 3, None))


@pytest.fixture(scope="module")
def sample_batch():
    """B = 32, as conf/data/sample."""
    return sample_batch_of(32)


@pytest.fixture(scope="module")
def small_sample_batch():
    return sample_batch_of(8)


def long_token_batch():
    """Tokens of every length up to past the cut at 50 characters (C_cap = 50, where the
    widest filters' windows run past their last VALID start)."""
    vocab = Vocabulary(["<S>", "</S>", "<UNK>"])
    words = iter(itertools.cycle([["x" * n, "é" * (n % 9 + 1)] for n in range(1, 70)]))
    window = next(packed_windows(vocab, 4, 30, lambda row: next(words)))
    return window_batch(window, CharIdCache(50), 0, reset=True, distinct=True)


def bilm_of(name: str, seed: int = 0) -> BiLM:
    torch.manual_seed(seed)
    bilm = BiLM(model_config(name), warm_start=False).train()
    bilm.options_name = name
    return bilm


def lm_run(bilm: BiLM, batch: dict, name: str, keys: bool):
    """Outputs, embeddings and parameter gradients of lm_forward on path ``name``; ``keys``:
    with the batch's distinct tokens."""
    bilm.zero_grad(set_to_none=True)
    extra = {"tokens": batch["tokens"], "token_index": batch["token_index"]} if keys else {}
    with path.use(name):
        fwd, bwd, (h, c) = bilm.lm_forward(batch["fwd_chars"], batch["bwd_chars"], **extra)
        (fwd.square().sum() + bwd.sum() + h.sum()).backward()
        with torch.no_grad():
            if keys:
                emb = bilm.char_cnn(batch["tokens"])[batch["token_index"]]
            else:
                emb = bilm.embed_tokens(torch.stack([batch["fwd_chars"], batch["bwd_chars"]]))
    grads = {n: p.grad.clone() for n, p in bilm.named_parameters()}
    return {"fwd": fwd, "bwd": bwd, "h": h, "c": c, "emb": emb}, grads


@pytest.mark.parametrize("model", ["tiny", "mini"])
@pytest.mark.parametrize("cpu_path", ["native", "torch"])
@pytest.mark.parametrize("which", ["sample", "long tokens"])
def test_distinct_tokens_give_the_cpu_paths_numbers(small_sample_batch, model, cpu_path, which):
    batch = small_sample_batch if which == "sample" else long_token_batch()
    bilm = bilm_of(model)
    bilm.options.dropout = 0.0  # the same numbers in train mode
    bilm.lstm.dropout_p = 0.0
    ours, our_grads = lm_run(bilm, batch, "accelerator", keys=True)
    cpu, cpu_grads = lm_run(bilm, batch, cpu_path, keys=False)
    for key in ours:
        torch.testing.assert_close(ours[key], cpu[key], atol=1e-5, rtol=1e-5, msg=key)
    for name in our_grads:
        torch.testing.assert_close(our_grads[name], cpu_grads[name], atol=1e-4, rtol=1e-4)


def test_cpu_paths_ignore_the_keys(small_sample_batch):
    """On the CPU paths the batch's tokens change nothing: the same numbers, bit for bit."""
    bilm = bilm_of("tiny")
    with_keys, _ = lm_run(bilm, small_sample_batch, "native", keys=True)
    without, _ = lm_run(bilm, small_sample_batch, "native", keys=False)
    for key in ("fwd", "bwd", "h", "c"):
        assert torch.equal(with_keys[key], without[key])


def on_meta(batch: dict) -> dict:
    return {k: v.to("meta") for k, v in batch.items() if isinstance(v, torch.Tensor)}


def executed_flops(bilm: BiLM, batch: dict, name: str, keys: bool) -> int:
    """FLOPs of lm_run; the accelerator path, which reads no values, counted on ``meta``."""
    if name == "accelerator":
        bilm, batch = bilm_of(bilm.options_name).to("meta"), on_meta(batch)
    with FlopCounterMode(display=False) as counter:
        lm_run(bilm, batch, name, keys)
    return counter.get_total_flops()


@pytest.mark.parametrize("model", ["tiny", "mini"])
def test_accelerator_flops_are_close_to_the_cpu_paths(sample_batch, model):
    """Forward + backward of lm_forward on real text: the accelerator path on the loader's
    distinct tokens does at most 1.2x the work of the CPU paths, which find them on the host.

    The CPU paths are counted on ``torch``: the native path takes the same shapes (each
    distinct token once, windows by length group), but its C and oneDNN kernels are invisible
    to FlopCounterMode.
    """
    bilm = bilm_of(model)
    cpu = executed_flops(bilm, sample_batch, "torch", keys=False)
    ours = executed_flops(bilm, sample_batch, "accelerator", keys=True)
    every_token = executed_flops(bilm, sample_batch, "accelerator", keys=False)
    print(
        f"{model}: CPU paths {cpu / 1e9:.3f} GFLOP, accelerator on tokens "
        f"{tuple(sample_batch['tokens'].shape)} {ours / 1e9:.3f} GFLOP ({ours / cpu:.3f}x), "
        f"on every token {every_token / 1e9:.3f} GFLOP ({every_token / cpu:.2f}x)"
    )
    assert ours <= 1.2 * cpu


class _OffDevice(TorchDispatchMode):
    """Records the operators that take or make a tensor on the CPU (0-dim ones aside, which
    pass to a kernel by value): a host-to-device copy, or a tensor made without a device."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        seen = torch.utils._pytree.tree_leaves((args, kwargs, out))
        if any(isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.dim() for t in seen):
            self.found.append(str(func))
        return out


@pytest.mark.parametrize("keys", [True, False])
def test_training_forward_runs_on_meta(sample_batch, keys):
    """Module and batch on ``meta``: every tensor of the forward and backward is made on the
    module's device (a CPU one would be a host-to-device copy on a GPU)."""
    bilm, batch = bilm_of("mini").to("meta"), on_meta(sample_batch)
    extra = {"tokens": batch["tokens"], "token_index": batch["token_index"]} if keys else {}
    with path.use("accelerator"), _OffDevice() as off:
        fwd, bwd, (h, c) = bilm.lm_forward(batch["fwd_chars"], batch["bwd_chars"], **extra)
        (fwd.sum() + bwd.sum()).backward()
    assert off.found == []
    assert fwd.shape == bwd.shape == (32, 20, bilm.options.lstm.projection_dim)
    assert fwd.device.type == "meta" and bilm.char_cnn.char_embed.weight.grad.device.type == "meta"
