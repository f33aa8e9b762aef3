"""The training step under torch.compile: the same loss and gradients as eager, and no call
into kernels.c inside the compiled graphs."""

from __future__ import annotations

import pytest
import torch

from elmo_lm.cpu import native, path
from elmo_lm.training.module import ElmoLM, lm_loss

VOCAB = ["<S>", "</S>", "<UNK>"] + [f"w{i}" for i in range(60)]


def _batch(batch: int = 3, time: int = 5) -> dict:
    g = torch.Generator().manual_seed(1)
    chars = [torch.randint(1, 200, (batch, time, 50), generator=g) for _ in range(2)]
    targets = [torch.randint(0, len(VOCAB), (batch, time), generator=g) for _ in range(2)]
    return {
        "fwd_chars": chars[0],
        "bwd_chars": chars[1],
        "fwd_targets": targets[0],
        "bwd_targets": targets[1],
    }


def _loss_and_grads(module: ElmoLM, loss_fn, batch: dict):
    torch.manual_seed(5)  # the same negatives and dropout masks for both
    module.zero_grad(set_to_none=True)
    loss = loss_fn(batch)
    loss.backward()
    grads = {
        n: p.grad.to_dense() if p.grad.is_sparse else p.grad
        for n, p in module.named_parameters()
        if p.grad is not None
    }
    return loss.detach(), grads


@pytest.mark.slow
def test_a_compiled_training_step_matches_eager(tiny_options, monkeypatch):
    import torch._inductor.config as inductor_config

    # Random draws through the eager generator, so both draw the same negatives and masks.
    monkeypatch.setattr(inductor_config, "fallback_random", True)
    options = tiny_options()
    options.n_negative_samples_batch = 16
    options.n_tokens_vocab = len(VOCAB)
    torch.manual_seed(0)
    module = ElmoLM(options.to_dict(), VOCAB).train()

    def loss_fn(batch):
        nll_fwd, n_fwd, nll_bwd, n_bwd, _ = module.lm_losses(batch)
        return lm_loss(nll_fwd, n_fwd, nll_bwd, n_bwd) * batch["fwd_targets"].shape[1]

    batch = _batch()
    asked = []  # the C library, asked for by kernels.py on the native path only
    real = native.kernels
    monkeypatch.setattr(native, "kernels", lambda: asked.append(1) or real())
    with path.use("native"):
        eager_loss, eager_grads = _loss_and_grads(module, loss_fn, batch)
        assert asked  # eager: the LSTM, the row softmax and the sampler call kernels.c
        asked.clear()
        compiled_loss, compiled_grads = _loss_and_grads(module, torch.compile(loss_fn), batch)
    assert not asked  # compiled: torch operations only, whatever the path says
    torch.testing.assert_close(compiled_loss, eager_loss, atol=1e-5, rtol=1e-5)
    assert compiled_grads.keys() == eager_grads.keys() and len(eager_grads) > 10
    for name, grad in eager_grads.items():
        torch.testing.assert_close(compiled_grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)
