"""The original trainer's update, computed by hand, against one real training step; ranks' own
random streams; one skip-or-step decision on every rank under mixed precision."""

from __future__ import annotations

import copy
import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from elmo_lm.data.datamodule import ElmoDataModule
from elmo_lm.model.sampler import log_uniform_candidates
from elmo_lm.training.module import ElmoLM, lm_loss, step_seed

LINES = [
    "the cat sat on the mat .",
    "a dog ran under the big rug",
    "the small cat ran .",
    "dogs and cats sat on a mat",
]


@pytest.mark.parametrize("clip_norm", [10.0, 0.05])
def test_one_step_is_the_originals_update(tiny_options, tmp_path, clip_norm):
    """bilm-tf: gradient of ``loss * unroll_steps`` (loss = mean of both directions' mean
    losses), clipped to a global norm, then Adagrad from an accumulator of 1.0: ``acc += g**2;
    w -= lr * g / sqrt(acc)``."""
    path = tmp_path / "train.txt"
    path.write_text("\n".join(LINES * 5) + "\n")
    dm = ElmoDataModule(path, batch_size=3, unroll_steps=5, shuffle_buffer=0)
    dm.setup()
    torch.manual_seed(0)
    options = tiny_options(dropout=0.0, all_clip_norm_val=clip_norm)
    module = ElmoLM(options.to_dict(), dm.vocab.tokens)
    assert not module.sampled  # full softmax: the step is deterministic
    before = copy.deepcopy(module)
    batch = next(iter(dm.train_dataloader()))

    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)

    # By hand, from the same weights and the first batch (zero state).
    before.train()
    fwd, bwd, _ = before.bilm.lm_forward(batch["fwd_chars"], batch["bwd_chars"])
    w, b = before.softmax.weight, before.softmax.bias.squeeze(1)

    def summed(outputs, targets):  # full softmax: (summed loss, count) of a direction
        targets = targets.flatten()
        nll = F.cross_entropy(outputs.flatten(0, 1) @ w.t() + b, targets, reduction="sum")
        return nll, torch.tensor(targets.numel())

    loss = lm_loss(*summed(fwd, batch["fwd_targets"]), *summed(bwd, batch["bwd_targets"]))
    params = dict(before.named_parameters())
    grads = torch.autograd.grad(loss * 5, list(params.values()), allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads)]
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    if clip_norm < 1:
        assert norm > 10 * clip_norm  # the clip fires
    scale = min(1.0, clip_norm / float(norm))
    after = dict(module.named_parameters())
    for (name, p), g in zip(params.items(), grads):
        g = g * scale
        expected = p - 0.2 * g / torch.sqrt(1.0 + g**2)
        torch.testing.assert_close(after[name].detach(), expected.detach(), atol=2e-6, rtol=1e-5)


def test_the_loss_is_the_originals_mean_of_both_directions_mean_losses():
    """bilm-tf: ``total_loss = 0.5 * (loss_fwd + loss_bwd)``, each the mean over the batch's
    targets; the module's ``lm_loss`` takes sums and counts."""
    fwd = [[0.5, -1.0, 1.5], [2.0, 0.0, 2.0]]  # logits of 2 targets over 3 classes
    bwd = [[1.0, 1.0, 0.0], [-0.5, 0.3, -0.8]]
    fwd_targets, bwd_targets = [0, 2], [1, 1]

    def mean_nll(logits, targets):  # -log softmax of each target, written out
        return sum(
            math.log(sum(math.exp(v) for v in row)) - row[t] for row, t in zip(logits, targets)
        ) / len(targets)

    def summed(logits, targets):
        nll = F.cross_entropy(torch.tensor(logits), torch.tensor(targets), reduction="sum")
        return nll, torch.tensor(len(targets))

    loss = lm_loss(*summed(fwd, fwd_targets), *summed(bwd, bwd_targets))
    expected = 0.5 * (mean_nll(fwd, fwd_targets) + mean_nll(bwd, bwd_targets))
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    # Numbers a reader can check: sums 6 over 3 targets and 2 over 4 give 0.5 * (2 + 0.5).
    assert float(lm_loss(*torch.tensor([6.0, 3, 2, 4]))) == 1.25
    # A direction without targets (an empty window) adds nothing, and is no division by zero.
    assert float(lm_loss(*torch.tensor([6.0, 3, 0, 0]))) == 1.0


def test_one_softmax_serves_both_directions(tiny_options):
    module = ElmoLM(tiny_options().to_dict(), ["<S>", "</S>", "<UNK>", "a", "b"])
    names = [n for n, _ in module.named_parameters() if not n.startswith("bilm.")]
    assert names == ["softmax.weight", "softmax.bias"]


def test_each_rank_and_step_draws_its_own_negatives():
    def negatives(rank, step):
        torch.manual_seed(step_seed(0, rank, step))
        return log_uniform_candidates(100, 5000)[0]

    assert torch.equal(negatives(0, 3), negatives(0, 3))  # reproducible, resume-exact
    assert not torch.equal(negatives(0, 3), negatives(1, 3))
    assert not torch.equal(negatives(0, 3), negatives(0, 4))
    seeds = {step_seed(s, r, t) for s in range(3) for r in range(8) for t in range(1000)}
    assert len(seeds) == 3 * 8 * 1000


def _overflow_on_rank(rank: int, options: dict, init_file: str, out_dir: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    torch.manual_seed(0)
    module = ElmoLM(options, ["<S>", "</S>", "<UNK>", "a", "b"])
    optimizer = torch.optim.Adagrad(module.parameters(), lr=0.2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaler.scale(torch.ones(()))  # as the scaled loss would
    for p in module.parameters():
        p.grad = torch.ones_like(p)
    # Only rank 1 overflows, in one softmax row (the gradient DDP does not reduce).
    rows = torch.tensor([[3]])
    value = float("inf") if rank == 1 else 1.0
    module.softmax.weight.grad = torch.sparse_coo_tensor(rows, torch.full((1, 8), value), (5, 8))
    module.on_after_backward()  # what Lightning calls right after the backward pass
    scaler.unscale_(optimizer)
    before = [p.detach().clone() for p in module.parameters()]
    scaler.step(optimizer)
    scaler.update()
    changed = any(not torch.equal(a, p) for a, p in zip(before, module.parameters()))
    finite = all(torch.isfinite(p).all() for p in module.parameters())
    torch.save(
        {"changed": changed, "finite": finite, "scale": scaler.get_scale()}, f"{out_dir}/{rank}.pt"
    )
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_an_overflow_on_one_rank_skips_the_step_on_every_rank(tiny_options, tmp_path):
    torch.multiprocessing.spawn(
        _overflow_on_rank,
        args=(tiny_options().to_dict(), str(tmp_path / "init"), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    results = [torch.load(tmp_path / f"{rank}.pt") for rank in (0, 1)]
    for r in results:
        assert r == {"changed": False, "finite": True, "scale": 2.0**9}
