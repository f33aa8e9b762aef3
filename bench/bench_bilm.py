"""Forward-pass speed of the biLM on the published "small" shape, as a share of the matmul peak.

Usage: python bench/bench_bilm.py [--batches 10] [--threads N]

Model FLOPs count every token position (with <S> and </S>) through the full char CNN (all 50
character positions), highway, projection and both directions' LSTMs, as the model defines them;
"executed" counts the matmul FLOPs the code runs (each distinct token once, only the character
windows that touch characters), measured with torch's FlopCounterMode. The peak is a large
float32 matmul measured in the same run (best of 3 s).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # elmo_lm, installed or not
from common import (  # noqa: E402
    distinct_sentences,
    lstm_flops,
    matmul_peak,
    ordinary_sentences,
    small_options,
    table,
    token_encoder_flops,
)

from elmo_lm import BiLM, batch_to_ids  # noqa: E402
from elmo_lm.cpu import matmul


def run(bilm, batches) -> tuple[float, int, float, int]:
    """Best seconds per batch (as for the peak: the least disturbed run), positions, distinct
    share, and the matmul FLOPs the code executes for one batch."""
    ids = [batch_to_ids(b) for b in batches]
    with torch.inference_mode():
        # FlopCounterMode counts torch's matmuls, not oneDNN's (elmo_lm.cpu.matmul): count the
        # same products with oneDNN off.
        onednn, matmul.ONEDNN = matmul.ONEDNN, False
        try:
            with FlopCounterMode(display=False) as counter:
                bilm(ids[0])
        finally:
            matmul.ONEDNN = onednn
        times = []
        for x in ids:
            t = time.perf_counter()
            bilm(x)
            times.append(time.perf_counter() - t)
    positions = sum(len(s) + 2 for s in batches[0])
    tokens = [t for s in batches[0] for t in s]
    return min(times), positions, len(set(tokens)) / len(tokens), counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    options = small_options()
    bilm = BiLM(options).eval()
    per_position = token_encoder_flops(options) + lstm_flops(options)
    peak = matmul_peak()
    rows = []
    for name, make in (
        ("ordinary text", ordinary_sentences),
        ("all tokens distinct", distinct_sentences),
    ):
        batches = [make(args.batch_size, 5, 35, seed=i) for i in range(args.batches)]
        seconds, positions, distinct, executed = run(bilm, batches[:1] * args.batches)
        flops = per_position * positions
        rows.append(
            {
                "text": name,
                "distinct tokens": f"{distinct:.0%}",
                "ms/batch": f"{seconds * 1e3:.1f}",
                "tokens/s": f"{positions / seconds:,.0f}",
                "model GFLOP/s": f"{flops / seconds / 1e9:.1f}",
                "% peak (model)": f"{flops / seconds / peak:.0%}",
                "% peak (executed)": f"{executed / seconds / peak:.0%}",
            }
        )
    print(f"float32 matmul peak: {peak / 1e9:.1f} GFLOP/s on {torch.get_num_threads()} threads")
    print(
        f"model: small (2 x 1024 cells, projection 128, 2048 filters, 1 highway); batch {args.batch_size} sentences of 5-35 tokens"
    )
    print(f"model FLOPs per token position: {per_position / 1e6:.1f} M")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
