"""Training throughput of the "small" ELMo shape with the sampled softmax, on the CPU.

Usage: python bench/bench_train.py [--steps 5] [--batch-size 32] [--unroll 20] [--threads N]
       python bench/bench_train.py --quick    # a smoke run: 1 step each, a few seconds

One step is what the Trainer runs per batch: the biLM forward over both streams, the sampled
softmax (8192 log-uniform negatives) of both directions, backward, the sparse-aware global-norm
clip and the Adagrad update (sparse on the softmax rows). Batches hold Zipf-distributed words.

Model FLOPs per token = 3 x forward (training), forward = the char CNN + highway + projection for
the token's position in each of the two streams, both directions' LSTMs, and both softmaxes over
the target and the sampled classes. "nominal" counts every stream position through the char CNN;
the model computes it once per distinct token of the batch, so "executed" counts that instead.
The peak is a large float32 matmul measured in the same run. The last rows compare the step time
with an 800,000-word vocabulary to a 50,000-word one: only the rows touched are read and updated,
so the ratio should stay under 1.2.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # elmo_lm, installed or not
from common import lstm_flops, matmul_peak, small_options, table, token_encoder_flops, zipf_words  # noqa: E402

from elmo_lm.formats.characters import token_to_char_ids  # noqa: E402
from elmo_lm.training.gradients import clip_grad_norm  # noqa: E402
from elmo_lm.training.module import ElmoLM  # noqa: E402
from elmo_lm.training.run import process_settings  # noqa: E402


def make_batches(n: int, batch: int, unroll: int, vocab_size: int, seed: int = 0) -> list[dict]:
    """Training batches of Zipfian words; targets are the words' ranks (``<UNK>`` past the vocab)."""
    words, weights = zipf_words(seed=seed)
    rng = random.Random(seed)
    char_table = torch.tensor([token_to_char_ids(w, 50) for w in words])  # (types, 50)
    batches = []
    for _ in range(n):
        ranks = torch.tensor(rng.choices(range(len(words)), weights, k=2 * batch * (unroll + 1)))
        ranks = ranks.view(2, batch, unroll + 1)
        ids = torch.where(ranks + 3 < vocab_size, ranks + 3, torch.full_like(ranks, 2))
        batches.append(
            {
                "fwd_chars": char_table[ranks[0, :, :-1]],
                "fwd_targets": ids[0, :, 1:],
                "bwd_chars": char_table[ranks[1, :, :-1]],
                "bwd_targets": ids[1, :, 1:],
                "stream_id": 0,
                "reset": False,
            }
        )
    return batches


def step_times(module: ElmoLM, batches: list[dict], warmup: int) -> list[float]:
    process_settings()  # as train(cfg) sets them
    optimizer = module.configure_optimizers()
    module.train()
    module.log = lambda *args, **kwargs: None  # no Trainer here
    times = []
    for i, batch in enumerate(batches):
        t = time.perf_counter()
        loss = module.training_step(batch, i)
        loss.backward()
        clip_grad_norm(module.parameters(), module.options.all_clip_norm_val)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def distinct_share(batches: list[dict]) -> float:
    shares = []
    for b in batches:
        chars = torch.cat([b["fwd_chars"], b["bwd_chars"]]).flatten(0, 1)
        shares.append(len(torch.unique(chars, dim=0)) / len(chars))
    return statistics.mean(shares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="measured steps per vocabulary size")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--unroll", type=int, default=20)
    parser.add_argument("--negatives", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="1 warmup + 1 step, small batch")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup, args.batch_size, args.unroll = 1, 1, 8, 10
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    options = small_options()
    p = options.lstm.projection_dim
    peak = matmul_peak(1.0 if args.quick else 3.0)

    rows, median = [], {}
    for vocab_size in (50_000, 800_000):
        vocab = ["<S>", "</S>", "<UNK>", *(f"w{i}" for i in range(vocab_size - 3))]
        options.n_negative_samples_batch = args.negatives
        module = ElmoLM(options.to_dict(), vocab)
        batches = make_batches(args.warmup + args.steps, args.batch_size, args.unroll, vocab_size)
        median[vocab_size] = statistics.median(step_times(module, batches, args.warmup))
        tokens = args.batch_size * args.unroll
        tokens_per_s = tokens / median[vocab_size]
        softmax = 2 * 2 * (args.negatives + 1) * p  # both directions, target + negatives
        encoder, lstm = token_encoder_flops(options), lstm_flops(options)
        nominal = 3 * (2 * encoder + lstm + softmax)
        executed = 3 * (2 * distinct_share(batches) * encoder + lstm + softmax)
        rows.append(
            {
                "vocab": f"{vocab_size:,}",
                "batch x unroll": f"{args.batch_size} x {args.unroll}",
                "step s": f"{median[vocab_size]:.3f}",
                "tokens/s": f"{tokens_per_s:,.0f}",
                "GFLOP/token": f"{nominal / 1e9:.3f}",
                "% peak (nominal)": f"{100 * nominal * tokens_per_s / peak:.1f}",
                "% peak (executed)": f"{100 * executed * tokens_per_s / peak:.1f}",
            }
        )
        del module
    print(f"float32 matmul peak: {peak / 1e9:.1f} GFLOP/s, {torch.get_num_threads()} threads")
    print(table(rows, list(rows[0])))
    ratio = median[800_000] / median[50_000]
    print(f"step time 800,000 / 50,000 vocabulary: {ratio:.2f} (must be < 1.2)")


if __name__ == "__main__":
    main()
