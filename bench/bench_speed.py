"""Training speed against the original trainer (allenai/bilm-tf) at several model shapes.

Usage: python bench/bench_speed.py [--shapes tiny mini small] [--steps 300] [--warmup 100]
       python bench/bench_speed.py --from_results /tmp/bench_speed/results.json

For each shape (``conf/model/<shape>.yaml``), both trainers learn the same corpus (default
data/fortunes, ``python scripts/make_real_corpus.py``) with the same vocabulary, batch (32 x 20),
sampled softmax (8192 negatives) and steps, one after the other, never two at once; each
through its real path: the original's ``train_peer.py`` (its unmodified ``train()``), ours
``python train.py`` with data loading (bench_peer.py runs both). Printed per shape:

- tokens/s after the first ``--warmup`` steps (to the last step the original's log times), for
  each trainer, and ours / original (target: >= 2 at every shape). With ``--rounds N`` the two
  run N times in turn and each keeps its fastest round; the ratio of each round is printed too.
  (On a shared machine the speed of both drifts by up to 20% over minutes: rounds in turn
  measure both in the same conditions.)
- the share of the machine's float32 matmul peak that our executed FLOPs reach (model FLOPs
  per token x 3 for the backward pass, the char CNN counted once per distinct token of a batch).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from bench_peer import OthersCPU, peer_vocab, shape_options, train_original, train_ours  # noqa: E402
from common import lstm_flops, matmul_peak, table, token_encoder_flops  # noqa: E402

from elmo_lm.formats.options import BiLMOptions  # noqa: E402

SPEED_TARGET = 2.0
DISTINCT_SHARE = 0.32  # distinct tokens per batch position, measured on fortunes at 32 x 20


def executed_flops(options: BiLMOptions, negatives: int) -> float:
    """Training FLOPs per token: 3 x (char CNN on its share of distinct tokens, both
    directions' LSTMs, both directions' sampled softmax over the target and the negatives)."""
    softmax = 2 * 2 * (negatives + 1) * options.lstm.projection_dim
    encoder = 2 * DISTINCT_SHARE * token_encoder_flops(options)
    return 3 * (encoder + lstm_flops(options) + softmax)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=ROOT / "data/fortunes/train.txt")
    parser.add_argument("--valid", type=Path, default=ROOT / "data/fortunes/valid.txt")
    parser.add_argument("--shapes", nargs="+", default=["tiny", "mini", "small"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=100, help="a multiple of 100")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--unroll_steps", type=int, default=20)
    parser.add_argument("--n_negative_samples", type=int, default=8192)
    parser.add_argument("--test_batch_size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each trainer, in turn")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_speed"))
    parser.add_argument("--from_results", type=Path, help="print an earlier run's table")
    args = parser.parse_args()
    args.ours_overrides = []
    if args.from_results:
        results = json.loads(args.from_results.read_text())
    else:
        results = run(args)
    print(report(results, args.n_negative_samples))


def run(args) -> dict:
    args.train, args.valid, args.out = (p.resolve() for p in (args.train, args.valid, args.out))
    if not args.train.is_file():
        raise SystemExit(f"{args.train}: no such corpus; make it with scripts/make_real_corpus.py")
    args.out.mkdir(parents=True, exist_ok=True)
    vocab = peer_vocab(args.train, args.out)
    results = {"peak_flops": matmul_peak(), "threads": torch.get_num_threads(), "shapes": {}}
    for shape in args.shapes:
        options = shape_options(shape)
        row, rounds = {}, []
        for k in range(args.rounds):
            this_round = {}
            for trainer in ("original", "ours"):
                out = args.out / shape / trainer / f"round{k}"
                with OthersCPU() as others:
                    if trainer == "original":
                        r = train_original(args, options, vocab, args.seed, out)
                    else:
                        r = train_ours(args, shape, vocab, args.seed, out)
                r = {**r, "others_cores": others.cores}
                this_round[trainer] = r["tokens_per_s_after_k"]
                if (
                    trainer not in row
                    or r["tokens_per_s_after_k"] > row[trainer]["tokens_per_s_after_k"]
                ):
                    row[trainer] = r  # the fastest round
                print(f"{shape} {trainer} round {k}: {json.dumps(r)}", flush=True)
            rounds.append(this_round)
        results["shapes"][shape] = {**row, "rounds": rounds}
        (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"runs in {args.out}\n")
    return results


def report(results: dict, negatives: int) -> str:
    peak = results["peak_flops"]
    rows = []
    for shape, r in results["shapes"].items():
        orig, ours = (r[t]["tokens_per_s_after_k"] for t in ("original", "ours"))
        flops = executed_flops(shape_options(shape), negatives)
        rows.append(
            {
                "shape": shape,
                "original tokens/s": f"{orig:,.0f}",
                "ours tokens/s": f"{ours:,.0f}",
                "ours / original": f"{ours / orig:.2f}",
                "each round": ", ".join(
                    f"{x['ours'] / x['original']:.2f}" for x in r.get("rounds", [])
                ),
                f">= {SPEED_TARGET:g}x": "yes" if ours / orig >= SPEED_TARGET else "no",
                "GFLOP/token": f"{flops / 1e9:.4f}",
                "ours % of peak": f"{100 * flops * ours / peak:.1f}",
                "others (cores)": ", ".join(
                    f"{r[t]['others_cores']:.2f}" for t in ("original", "ours")
                ),
            }
        )
    head = f"float32 matmul peak {peak / 1e9:.1f} GFLOP/s ({results['threads']} threads)\n"
    return head + table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
