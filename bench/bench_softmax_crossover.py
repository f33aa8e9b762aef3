"""Full softmax against the sampled one at small vocabularies: where does sampling pay?

Usage: python bench/bench_softmax_crossover.py [--dims 64 128] [--vocabs 9000 12000 ...]

Per vocabulary size and projection size, the softmax part of a training step with a batch of
32 x 20 (both directions' forward and backward passes, the global-norm clip of the softmax's
gradients and Adagrad's update of its rows) with the full softmax and with the sampled one
(8192 negatives), the median of ``--steps`` steps. The sampled softmax's cost hardly moves
with the vocabulary; the full one's grows with it. ``module.softmax=auto`` samples whenever the
vocabulary is larger than the negatives (below that it cannot) and logs when it trains with the
full softmax; this measures whether the full softmax would be cheaper just above that line.
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

from elmo_lm.model.softmax import Softmax  # noqa: E402
from elmo_lm.training.gradients import clip_grad_norm  # noqa: E402
from elmo_lm.training.run import process_settings  # noqa: E402

NEGATIVES = 8192


def step_ms(vocab: int, dim: int, sampled: bool, steps: int) -> float:
    torch.manual_seed(0)
    softmax = Softmax(vocab, dim, NEGATIVES, sampled).train()
    optimizer = torch.optim.Adagrad(softmax.parameters(), lr=0.2, initial_accumulator_value=1.0)
    times = []
    for i in range(steps + 3):
        inputs = [torch.randn(32, 20, dim, requires_grad=True) for _ in range(2)]
        targets = [torch.randint(0, vocab, (32, 20)) for _ in range(2)]
        start = time.perf_counter()
        loss = sum(softmax(x, t)[0] / t.numel() for x, t in zip(inputs, targets))
        loss.backward()
        clip_grad_norm(softmax.parameters(), 10.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 128])
    parser.add_argument(
        "--vocabs", type=int, nargs="+", default=[9000, 12000, 16000, 24000, 32000, 48000]
    )
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args()
    process_settings()  # as train(cfg) sets them
    rows, crossover = [], {}
    for dim in args.dims:
        for vocab in args.vocabs:
            full = step_ms(vocab, dim, False, args.steps)
            sampled = step_ms(vocab, dim, True, args.steps)
            if full <= sampled:
                crossover[dim] = vocab
            rows.append(
                {
                    "projection": dim,
                    "vocabulary": f"{vocab:,}",
                    "vocab / negatives": f"{vocab / NEGATIVES:.2f}",
                    "full ms": f"{full:.1f}",
                    "sampled ms": f"{sampled:.1f}",
                    "cheaper": "full" if full <= sampled else "sampled",
                }
            )
    print(f"{torch.get_num_threads()} threads, batch 32 x 20, {NEGATIVES} negatives")
    print(table(rows, list(rows[0])))
    for dim in args.dims:
        v = crossover.get(dim)
        print(
            f"projection {dim}: full softmax cheaper up to "
            + (f"{v:,} tokens ({v / NEGATIVES:.2f} x negatives)" if v else "none measured")
        )


if __name__ == "__main__":
    main()
