"""DDP for real: ``python train.py trainer.devices=2 trainer.accelerator=cpu`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from elmo_lm.commands.evaluate import evaluate
from tests.helpers import ROOT


class BatchRecorder(L.Callback):
    """Writes, per rank, the forward target ids of every training batch and a checksum of the
    weights at the end (the DDP test passes it to train.py as an extra callback)."""

    def __init__(self):
        self.batches: list[list[list[int]]] = []
        self.negatives: list[list[int]] = []  # the first sampled ids of each draw

    def on_train_start(self, trainer, pl_module):
        import elmo_lm.model.softmax as softmax

        draw = softmax.log_uniform_candidates

        def recording(*args, **kwargs):
            ids, tries = draw(*args, **kwargs)
            self.negatives.append(ids[:16].tolist())
            return ids, tries

        softmax.log_uniform_candidates = recording

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append(batch["fwd_targets"].tolist())

    def on_train_end(self, trainer, pl_module):
        checksums = {n: float(p.detach().double().sum()) for n, p in pl_module.named_parameters()}
        record = {"batches": self.batches, "checksums": checksums, "negatives": self.negatives}
        path = Path(trainer.default_root_dir) / f"batches_rank{trainer.global_rank}.json"
        path.write_text(json.dumps(record))


def sentences_of(batches: list[list[list[int]]]) -> set[tuple[int, ...]]:
    """The whole sentences in each row's stream of targets: ``w1 .. wn </S>`` (</S> = 1), one
    after another from the row's start (<S> is never a target)."""
    rows = [sum((batch[r] for batch in batches), []) for r in range(len(batches[0]))]
    found = set()
    for row in rows:
        current: list[int] = []
        for token in row:
            if token == 1:
                found.add(tuple(current))
                current = []
            else:
                current.append(token)
    return found


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    # 240 distinct sentences (each has its own number token), 40 held out.
    words = "the a cat dog sat ran on under mat rug big small".split()
    lines = [
        f"{words[i % 12]} {words[(i * 7) % 12]} n{i} {words[(i * 5 + 3) % 12]} ."
        for i in range(280)
    ]
    (tmp_path / "train.txt").write_text("\n".join(lines[:240]) + "\n")
    (tmp_path / "valid.txt").write_text("\n".join(lines[240:]) + "\n")
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "model=tiny",
        f"data.train_files={tmp_path / 'train.txt'}",
        f"data.valid_files={tmp_path / 'valid.txt'}",
        "data.batch_size=4",
        "data.unroll_steps=10",
        "data.valid_batch_size=6",  # 6 held-out streams of about 7 sentences, 3 per rank
        "module.n_negative_samples=40",  # vocabulary of 255: the sampled softmax, sparse grads
        "trainer.max_epochs=1",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
        "+callbacks.recorder._target_=tests.integration.test_ddp.BatchRecorder",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    ranks = [json.loads((run_dir / f"batches_rank{r}.json").read_text()) for r in (0, 1)]
    # The ranks read disjoint sentences, all of them from the corpus, and stayed in step.
    seen = [sentences_of(r["batches"]) for r in ranks]
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert len(ranks[0]["batches"]) == len(ranks[1]["batches"]) > 1
    # Each rank draws its own negatives (and dropout masks): one draw per direction and step.
    draws = [r["negatives"] for r in ranks]
    assert len(draws[0]) == len(draws[1]) == 2 * len(ranks[0]["batches"])
    assert all(a != b for a, b in zip(*draws))
    # Both ranks end with the same weights, softmax (synced by hand) included.
    for name, value in ranks[0]["checksums"].items():
        assert value == pytest.approx(ranks[1]["checksums"][name], rel=1e-6, abs=1e-6), name

    # The logged validation perplexity (summed over both ranks) is the single-process one.
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "train/sampled_ppl" in metrics
    # Held-out streams carry the state along ~7 sentences each, split 3 + 3 over the ranks.
    single = evaluate(
        run_dir / "checkpoints" / "last.ckpt", tmp_path / "valid.txt", batch_size=6, device="cpu"
    )
    assert metrics["val/tokens"] == single["tokens"] == 40 * 6  # 5 words + </S> per sentence
    for key in ("ppl_fwd", "ppl_bwd", "ppl"):
        assert metrics[f"val/{key}"] == pytest.approx(single[key], rel=1e-5)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == len(ranks[0]["batches"])


ROWS = {False: [[1, 4, 1], [4, 5]], True: [[1, 4, 1], [4, 5, 5]]}  # by sync_free


def _average_on_rank(rank: int, init_file: str, out_dir: str, sync_free: bool) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    import contextlib

    from elmo_lm.cpu import path
    from elmo_lm.training import gradients

    # The accelerator path on the CPU: every rank gathers its entries as they are.
    with path.use("accelerator") if sync_free else contextlib.nullcontext():
        _average(rank, out_dir, sync_free, gradients)


def _average(rank: int, out_dir: str, sync_free: bool, gradients) -> None:
    sparse = torch.nn.Parameter(torch.zeros(6, 2))
    dense = torch.nn.Parameter(torch.zeros(3))
    # Rank 0 touches rows 1 and 4 (row 1 twice), rank 1 rows 4 and 5 (row 5 twice if sync_free).
    rows = ROWS[sync_free][rank]
    values = torch.arange(2.0 * len(rows)).view(-1, 2) + 10 * rank
    sparse.grad = torch.sparse_coo_tensor([rows], values, (6, 2))
    dense.grad = torch.full((3,), float(rank + 1))
    gradients.all_reduce_mean_grads([sparse, dense])
    assert sparse.grad.is_sparse
    torch.save({"sparse": sparse.grad.to_dense(), "dense": dense.grad}, f"{out_dir}/{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("sync_free", [False, True])
def test_sparse_gradients_are_averaged_over_ranks(tmp_path, sync_free):
    torch.multiprocessing.spawn(
        _average_on_rank,
        args=(str(tmp_path / "init"), str(tmp_path), sync_free),
        nprocs=2,
        join=True,
    )
    expected = torch.zeros(6, 2)
    for rank, rows in enumerate(ROWS[sync_free]):
        values = torch.arange(2.0 * len(rows)).view(-1, 2) + 10 * rank
        expected.index_add_(0, torch.tensor(rows), values)
    expected /= 2
    for rank in (0, 1):
        got = torch.load(tmp_path / f"{rank}.pt")
        torch.testing.assert_close(got["sparse"], expected)
        torch.testing.assert_close(got["dense"], torch.full((3,), 1.5))


@pytest.mark.slow
def test_multi_node_config_under_an_external_launcher(tmp_path):
    """hardware=multi_node as SLURM or torchrun start it: here torchrun, 1 node x 2 CPU processes."""
    lines = [f"w{i % 17} w{(i * 3) % 17} w{(i * 5) % 17} ." for i in range(200)]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc-per-node=2",
        str(ROOT / "train.py"),
        "hardware=multi_node",
        "trainer.num_nodes=1",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "model=tiny",
        f"data.train_files={tmp_path / 'train.txt'}",
        f"data.valid_files={tmp_path / 'train.txt'}",
        "data.batch_size=4",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        f"paths.runs_dir={tmp_path / 'runs'}",
        "name=mn",
    ]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    # Both processes agreed on one run directory, named after the job.
    (run_dir,) = (tmp_path / "runs" / "mn").iterdir()
    assert run_dir.name.startswith("job_")
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
