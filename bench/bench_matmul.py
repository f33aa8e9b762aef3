"""The training step's float32 products on this CPU: torch's BLAS (MKL) against oneDNN.

Usage: python bench/bench_matmul.py [--threads 1 2] [--repeats 20]

For each product of a training step at the ``mini`` and ``small`` shapes (batch 32 x 20, 8192
negatives), the median time and GFLOP/s of ``torch.mm`` (MKL) and of ``elmo_lm.cpu.matmul.mm``
(oneDNN where ``uses_onednn`` says so), and the speed-up. MKL picks its kernels by processor
vendor (AVX2 code on AMD processors even where AVX-512 is there); oneDNN does not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from common import table  # noqa: E402

from elmo_lm.cpu import matmul  # noqa: E402

N, S = 640, 8192  # tokens of a 32 x 20 batch, negatives
# (name, a's shape, b's shape, a given transposed): the products of a step
PRODUCTS = [
    ("softmax logits, P=64", (N, 64), (64, S), False),
    ("softmax d inputs, P=64", (N, S), (S, 64), False),
    ("softmax d weights, P=64", (S, N), (N, 65), True),
    ("softmax logits, P=128", (N, 128), (128, S), False),
    ("softmax d weights, P=128", (S, N), (N, 129), True),
    ("LSTM inputs, 256 cells", (N, 64), (64, 1024), False),
    ("LSTM d W, 256 cells", (64, N), (N, 1024), True),
    ("LSTM inputs, 1024 cells", (N, 128), (128, 4096), False),
    ("char CNN width 5, 128 filters", (15000, 80), (80, 128), False),
    ("highway 2048", (800, 2048), (2048, 4096), False),
]


def median_seconds(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"oneDNN available: {matmul.ONEDNN}")
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, a_shape, b_shape, transposed in PRODUCTS:
            torch.manual_seed(0)
            a = torch.randn(*reversed(a_shape)).t() if transposed else torch.randn(*a_shape)
            b = torch.randn(*b_shape)
            flops = 2 * a_shape[0] * a_shape[1] * b_shape[1]
            blas = median_seconds(lambda a=a, b=b: torch.mm(a, b), args.repeats)
            ours = median_seconds(lambda a=a, b=b: matmul.mm(a, b), args.repeats)
            rows.append(
                {
                    "threads": threads,
                    "product": name,
                    "shape": f"{a_shape[0]}x{a_shape[1]} @ {b_shape[0]}x{b_shape[1]}",
                    "MKL ms": f"{1e3 * blas:.2f}",
                    "MKL GFLOP/s": f"{flops / blas / 1e9:.0f}",
                    "matmul.mm ms": f"{1e3 * ours:.2f}",
                    "matmul.mm GFLOP/s": f"{flops / ours / 1e9:.0f}",
                    "oneDNN": "yes" if matmul.uses_onednn(a, b) else "no",
                    "speed-up": f"{blas / ours:.2f}",
                }
            )
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
