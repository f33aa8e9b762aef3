"""Peak memory of training the published ``original`` ELMo shape on the CPU.

Usage: python bench/bench_memory.py [--vocab 800000] [--batch-size 128] [--unroll 20] [--steps 2]
       python bench/bench_memory.py --quick     # the mini shape, a 50,000 vocabulary

Each configuration runs in a fresh process (so that its peak resident memory is its own):
``conf/model/original.yaml`` (2 x 4096 cells, projection 512, 2048 filters), a vocabulary of
``--vocab`` words, batches of Zipfian words, the sampled softmax (8192 negatives), and full
training steps as the Trainer runs them (forward, backward, clip, sparse Adagrad). Printed: the
peak RSS, what the parameters and Adagrad's state take (4 bytes each, twice), the shared
softmax's part of that, and the median step time.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # elmo_lm, installed or not
from bench_peer import shape_options  # noqa: E402
from bench_train import make_batches, step_times  # noqa: E402
from common import table  # noqa: E402

from elmo_lm.training.module import ElmoLM  # noqa: E402


def measure(shape: str, vocab_size: int, batch: int, unroll: int, steps: int) -> dict:
    """One configuration, in this process: its peak RSS and step time."""
    torch.manual_seed(0)
    options = shape_options(shape)
    options.n_negative_samples_batch = 8192
    vocab = ["<S>", "</S>", "<UNK>", *(f"w{i}" for i in range(vocab_size - 3))]
    module = ElmoLM(options.to_dict(), vocab)
    batches = make_batches(steps + 1, batch, unroll, vocab_size)
    times = step_times(module, batches, warmup=1)
    params = sum(p.numel() for p in module.parameters())
    softmax = sum(p.numel() for p in module.softmax.parameters())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return {
        "shape": shape,
        "vocab": vocab_size,
        "batch": f"{batch} x {unroll}",
        "peak_gib": peak_kib / 2**20,
        "params_and_adagrad_gib": 2 * 4 * params / 2**30,
        "softmax_gib": 2 * 4 * softmax / 2**30,
        "step_s": statistics.median(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="original")
    parser.add_argument("--vocab", type=int, default=800_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--unroll", type=int, default=20)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    if args.quick:
        args.shape, args.vocab, args.batch_size, args.steps = "mini", 50_000, 32, 2
    config = (args.shape, args.vocab, args.batch_size, args.unroll, args.steps)
    if args.one:
        print(json.dumps(measure(*config)))
        return
    cmd = [sys.executable, __file__, "--one", f"--shape={args.shape}", f"--vocab={args.vocab}"]
    cmd += [f"--batch-size={args.batch_size}", f"--unroll={args.unroll}", f"--steps={args.steps}"]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    r = json.loads(out.splitlines()[-1])
    row = {
        "shape": r["shape"],
        "vocabulary": f"{r['vocab']:,}",
        "batch": r["batch"],
        "peak RSS GiB": f"{r['peak_gib']:.2f}",
        "params + Adagrad GiB": f"{r['params_and_adagrad_gib']:.2f}",
        "of which softmax GiB": f"{r['softmax_gib']:.2f}",
        "step s": f"{r['step_s']:.2f}",
    }
    print(table([row], list(row)))


if __name__ == "__main__":
    main()
