"""How good the first tokens of a sentence are from a zero, a warm and a carried LSTM state.

Usage:
    python bench/bench_warm_start.py --ckpt runs/<name>/<time>/checkpoints/last.ckpt
    python bench/bench_warm_start.py [--options O.json --weights W.hdf5] [--data valid.txt]

In training the LM reads sentences one after another (``<S> a1 .. an <S> b1 ..``, the backward
LM the same over reversed sentences), so it almost never starts a sentence from a zero state.
Each held-out sentence (``--data``, default the sample corpus's valid.txt) is run from

* zero: a zero state (the original tools' first batch; ``BiLM(warm_start=False)``),
* warm: ``BiLM.warm_state()``, the state after the fixed warm-up context (the default),
* carried: the state the LM has after the sentences before it in the file, as in training and in
  the original's held-out test (the file is cut into ``--streams`` streams; each stream first reads
  the sentence before its first one, unscored).

With a training checkpoint (``--ckpt``, which holds the softmax), the first table gives forward
and backward perplexity over the first target, the first 5 targets and all targets of each
sentence (each direction in its reading order, ``</S>``/``<S>`` included in "all"). An exported
pair has no softmax: then only the second table, the mean relative distance
``|x - x_carried| / |x_carried|`` of each direction's top-layer vector of the first word, the
first 5 words and all words to the vector the same word gets with carried state.
``--contexts`` adds rows for other warm-up contexts (how the default was chosen).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table  # noqa: E402

from elmo_lm.data.corpus import read_sentences  # noqa: E402
from elmo_lm.formats.characters import BOS_TOKEN, EOS_TOKEN, token_to_char_ids  # noqa: E402
from elmo_lm.model.bilm import BiLM, warm_up_inputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUCKETS = (("first 1", 1), ("first 5", 5), ("all", None))
# Other warm-up contexts (sentences read in order, as ``BiLM(warm_up=...)``).
CONTEXTS = {
    "<S>": [""],
    "<S> .": ["."],
    "<S> . x3": ["."] * 3,
    "the dog sat .": ["the dog sat ."],
    "the dog sat . x2": ["the dog sat ."] * 2,
    "the dog sat . x3": ["the dog sat ."] * 3,
    "a dog sat . | the man sat .": ["a dog sat .", "the man sat ."],
    "a dog sat . | the man said it . | there was a cat .": [
        "a dog sat .",
        "the man said it .",
        "there was a cat .",
    ],
    "The man said it . | There was a cat .": ["The man said it .", "There was a cat ."],
    "it was a cat . | the dog ran . | a man said it .": [
        "it was a cat .",
        "the dog ran .",
        "a man said it .",
    ],
}


def char_ids(rows: list[list[str]], max_chars: int) -> torch.Tensor:
    """(B, T, C) ids of token rows padded with all-zero rows to the longest."""
    longest = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), longest, max_chars, dtype=torch.long)
    for b, row in enumerate(rows):
        if row:
            ids[b, : len(row)] = torch.tensor([token_to_char_ids(t, max_chars) for t in row])
    return ids


def directions(words: list[str]) -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]]]:
    """(inputs, targets) of the forward and the backward LM for one sentence, as in training."""
    fwd = [BOS_TOKEN, *words, EOS_TOKEN]
    bwd = fwd[::-1]
    return (fwd[:-1], fwd[1:]), (bwd[:-1], bwd[1:])


class Scorer:
    """Top-layer vectors and (with a softmax) per-target losses of whole sentences."""

    def __init__(self, bilm: BiLM, softmaxes, vocab):
        self.bilm, self.softmaxes, self.vocab = bilm, softmaxes, vocab
        self.max_chars = bilm.options.char_cnn.max_characters_per_token

    def run(self, fwd_rows, bwd_rows, fwd_targets, bwd_targets, state):
        """Per row and direction: top vectors (T, P) and losses (T,) (None without softmax)."""
        fwd, bwd, _ = self.bilm.lm_forward(
            char_ids(fwd_rows, self.max_chars), char_ids(bwd_rows, self.max_chars), state
        )
        out = []
        for top, targets, softmax in zip((fwd, bwd), (fwd_targets, bwd_targets), self.softmaxes):
            losses = None
            if softmax is not None:
                time = top.shape[1]
                ids = torch.tensor(
                    [
                        [self.vocab.token_to_id(t) for t in row] + [0] * (time - len(row))
                        for row in targets
                    ]
                )  # (B, T); padding scores id 0, never counted
                losses = full_softmax_losses(top, ids, softmax)
            out.append((top, losses))
        return out


def full_softmax_losses(top: torch.Tensor, ids: torch.Tensor, softmax) -> torch.Tensor:
    """-log p(ids) under the full softmax, (B, T, P) and (B, T) -> (B, T), in row chunks."""
    x, t = top.reshape(-1, top.shape[-1]), ids.reshape(-1)
    chunk = max(1, 2**24 // softmax.weight.shape[0])
    losses = []
    for xs, ts in zip(x.split(chunk), t.split(chunk)):
        logits = xs @ softmax.weight.T + softmax.bias.squeeze(-1)  # (chunk, V)
        losses.append(logits.logsumexp(-1) - logits.gather(-1, ts[:, None]).squeeze(-1))
    return torch.cat(losses).view(ids.shape)


def each_sentence(scorer: Scorer, sentences, start, batch_size: int):
    """Per sentence, per direction: (top (n + 1, P), losses (n + 1,)) from a fresh start state."""
    results = [None] * len(sentences)
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    for a in range(0, len(order), batch_size):
        index = order[a : a + batch_size]
        pairs = [directions(sentences[i]) for i in index]
        fwd_rows, fwd_targets = zip(*(p[0] for p in pairs))
        bwd_rows, bwd_targets = zip(*(p[1] for p in pairs))
        (f_top, f_loss), (b_top, b_loss) = scorer.run(
            fwd_rows, bwd_rows, fwd_targets, bwd_targets, start(len(index))
        )
        for row, i in enumerate(index):
            n = len(sentences[i]) + 1
            results[i] = [
                (top[row, :n], None if loss is None else loss[row, :n])
                for top, loss in ((f_top, f_loss), (b_top, b_loss))
            ]
    return results


def carried(scorer: Scorer, sentences, n_streams: int):
    """As ``each_sentence``, with each sentence read after the ones before it in its stream."""
    n = len(sentences)
    per = math.ceil(n / n_streams)
    chunks = [list(range(s, min(s + per, n))) for s in range(0, n, per)]
    rows = {d: ([], []) for d in (0, 1)}  # direction -> (input rows, target rows)
    spans = []  # per chunk: (sentence, start position) of the scored sentences
    for chunk in chunks:
        before = (chunk[0] - 1) % n  # the sentence read first, unscored
        inputs, targets, where, pos = ([], []), ([], []), [], 0
        for k, i in enumerate([before, *chunk]):
            pairs = directions(sentences[i])
            for d in (0, 1):
                inputs[d].extend(pairs[d][0])
                targets[d].extend(pairs[d][1])
            if k > 0:
                where.append((i, pos))
            pos += len(pairs[0][0])
        for d in (0, 1):
            rows[d][0].append(inputs[d])
            rows[d][1].append(targets[d])
        spans.append(where)
    (f_top, f_loss), (b_top, b_loss) = scorer.run(
        rows[0][0], rows[1][0], rows[0][1], rows[1][1], None
    )
    results = [None] * n
    for row, where in enumerate(spans):
        for i, p in where:
            m = len(sentences[i]) + 1
            results[i] = [
                (top[row, p : p + m], None if loss is None else loss[row, p : p + m])
                for top, loss in ((f_top, f_loss), (b_top, b_loss))
            ]
    return results


def perplexity_row(name: str, results) -> dict:
    row = {"start state": name}
    for d, label in enumerate(("fwd", "bwd")):
        for bucket, k in BUCKETS:
            losses = torch.cat([r[d][1][:k] for r in results])
            row[f"{label} {bucket}"] = f"{losses.mean().exp().item():.2f}"
    return row


def distance_row(name: str, results, reference) -> dict:
    row = {"start state": name}
    for d, label in enumerate(("fwd", "bwd")):
        for bucket, k in BUCKETS:
            dist = []
            for r, c in zip(results, reference):
                # The top vector of word j is the output at input j + 1 (after <S> or </S>).
                x, y = r[d][0][1:][:k], c[d][0][1:][:k]
                dist.append((x - y).norm(dim=-1) / y.norm(dim=-1))
            row[f"{label} {bucket}"] = f"{torch.cat(dist).mean().item():.3f}"
    return row


def load(args):
    """The biLM, the (forward, backward) softmaxes or Nones, and the vocabulary or None."""
    if args.ckpt:
        from elmo_lm.training.module import ElmoLM

        module = ElmoLM.from_checkpoint(args.ckpt).eval()
        shared = getattr(module, "softmax", None)
        softmaxes = (shared or module.softmax_fwd, shared or module.softmax_bwd)
        return module.bilm, softmaxes, module.vocab
    bilm = BiLM.from_hdf5(args.options, args.weights)
    return bilm, (None, None), None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="training checkpoint (has the softmax: perplexities)")
    parser.add_argument("--options", default=str(ROOT / "models/sample/options.json"))
    parser.add_argument("--weights", default=str(ROOT / "models/sample/weights.hdf5"))
    parser.add_argument("--vocab", help="unused: a checkpoint holds its vocabulary")
    parser.add_argument("--data", default=str(ROOT / "data/sample/valid.txt"))
    parser.add_argument("--sentences", type=int, default=None, help="score the first N only")
    parser.add_argument("--streams", type=int, default=16, help="streams of the carried run")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--contexts", action="store_true", help="also other warm-up contexts")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    bilm, softmaxes, vocab = load(args)
    bilm.eval()
    sentences = [s for s in read_sentences(args.data) if s][: args.sentences]
    scorer = Scorer(bilm, softmaxes, vocab)

    def context_start(context):
        h, c = bilm.context_state(*warm_up_inputs(context))
        return lambda b: (h.expand(-1, -1, b, -1), c.expand(-1, -1, b, -1))

    runs = {
        "zero": each_sentence(scorer, sentences, lambda b: None, args.batch_size),
        "warm (default)": each_sentence(scorer, sentences, bilm.warm_state, args.batch_size),
    }
    if args.contexts:
        for name, context in CONTEXTS.items():
            start = context_start(context)
            runs[f"warm {name}"] = each_sentence(scorer, sentences, start, args.batch_size)
    reference = carried(scorer, sentences, args.streams)
    n_tokens = sum(len(s) for s in sentences)
    print(
        f"{len(sentences)} sentences ({n_tokens} words) of {args.data}; model "
        f"{args.ckpt or args.weights}; default warm-up {' | '.join(bilm.warm_up)!r}"
    )
    if softmaxes[0] is not None:
        rows = [perplexity_row(name, r) for name, r in runs.items()]
        rows.append(perplexity_row("carried", reference))
        print("\nperplexity over the first targets of each sentence (lower is better)")
        print(table(rows))
    rows = [distance_row(name, r, reference) for name, r in runs.items()]
    print("\nrelative distance of the top-layer vectors to those with carried state (0 = same)")
    print(table(rows))


if __name__ == "__main__":
    main()
