"""Interpolated modified Kneser-Ney n-gram baseline: the perplexity a biLM should beat.

Usage: python bench/kn5_baseline.py [--train data/fortunes/train.txt]
       [--valid data/fortunes/valid.txt] [--test data/fortunes/test.txt] [--order 5]

Interpolated modified Kneser-Ney (Chen & Goodman 1998; what KenLM's ``lmplz`` and SRILM's
``-kndiscount -interpolate`` build, without pruning): three discounts per order, D1, D2, D3+,
from the counts-of-counts of that order's (adjusted) counts. The highest order uses raw counts,
lower orders continuation counts (distinct left words), except n-grams that begin with ``<S>``,
which have no left word and keep their raw counts. The unigram distribution is interpolated with
the uniform distribution over the vocabulary, so ``<UNK>`` and every word get probability > 0.

Forward direction only: each sentence is ``<S> w1 .. wn </S>``; ``</S>`` is predicted and
counted, ``<S>`` never. The vocabulary is every token of the training file plus ``</S>`` and
``<UNK>``; a valid/test token outside it is scored as ``<UNK>`` (and counted in the perplexity,
as KenLM's "including OOVs"). The table gives the perplexity of the order-1 .. ``--order``
models on valid and test, the tokens scored and the OOV rate (of words, ``</S>`` excluded).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # elmo_lm, installed or not
from elmo_lm.console import format_table  # noqa: E402

BOS, EOS, UNK = "<S>", "</S>", "<UNK>"
# KenLM's --discount_fallback: used when counts-of-counts give a discount outside (0, i].
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


def read_sentences(path: Path) -> list[list[str]]:
    """Whitespace-separated tokens of each non-empty line of ``path``."""
    if not path.is_file():
        sys.exit(f"error: {path} not found; build it with `python scripts/make_real_corpus.py`")
    with path.open(encoding="utf-8") as f:
        return [line.split() for line in f if line.strip()]


def ngram_counts(sentences: list[list[str]], order: int) -> list[Counter]:
    """Raw counts of the n-grams ending at each predicted token, ``counts[n - 1]`` for n-grams."""
    counts = [Counter() for _ in range(order)]
    for sentence in sentences:
        padded = [BOS, *sentence, EOS]
        for i in range(1, len(padded)):  # position 0 (<S>) is never predicted
            for n in range(1, min(order, i + 1) + 1):
                counts[n - 1][tuple(padded[i - n + 1 : i + 1])] += 1
    return counts


def continuation_counts(counts: Counter, longer: Counter) -> Counter:
    """Adjusted counts: distinct left words of each n-gram in ``longer``; raw if it starts with <S>."""
    adjusted = Counter(gram[1:] for gram in longer)
    for gram, c in counts.items():
        if gram[0] == BOS:
            adjusted[gram] = c
    return adjusted


def discounts(counts: Counter) -> tuple[float, float, float]:
    """Modified KN discounts D1, D2, D3+ from the counts-of-counts n1..n4 (Chen & Goodman eq. 26)."""
    n = Counter(c for c in counts.values() if c <= 4)
    n1, n2, n3, n4 = (n[i] for i in range(1, 5))
    if min(n1, n2, n3, n4) == 0:
        return FALLBACK_DISCOUNTS
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0 < di <= i + 1 for i, di in enumerate(d)):
        return FALLBACK_DISCOUNTS
    return d


class KneserNey:
    """An interpolated modified Kneser-Ney language model of one order.

    Args:
        sentences: Training sentences (lists of tokens, without ``<S>``/``</S>``).
        order: Longest n-gram.
        counts: ``ngram_counts(sentences, order)`` when already computed (it may hold more
            orders than ``order``; the extra are ignored).
    """

    def __init__(
        self, sentences: list[list[str]], order: int = 5, counts: list[Counter] | None = None
    ):
        counts = counts or ngram_counts(sentences, order)
        self.order = order
        self.vocab = ({w for s in sentences for w in s} - {BOS}) | {EOS, UNK}
        # The highest order keeps raw counts; each lower order counts distinct left words.
        self.counts = [
            continuation_counts(counts[n - 1], counts[n]) if n < order else counts[n - 1]
            for n in range(1, order + 1)
        ]
        self.discounts = [discounts(c) for c in self.counts]
        # Per order: history -> (sum of counts after it, probability mass the discounts removed).
        self.contexts = []
        for c, d in zip(self.counts, self.discounts):
            contexts: dict[tuple, list[float]] = {}
            for gram, a in c.items():
                stats = contexts.setdefault(gram[:-1], [0, 0.0])
                stats[0] += a
                stats[1] += min(a, d[min(a, 3) - 1])
            self.contexts.append(contexts)

    def prob(self, word: str, history: tuple[str, ...] | list[str] = ()) -> float:
        """p(word | history); a word outside the vocabulary is ``<UNK>``.

        Args:
            word: The predicted token (``</S>`` for the end of the sentence).
            history: The preceding tokens, starting with ``<S>`` if the sentence start is in
                reach; only the last ``order - 1`` count.
        """
        if word not in self.vocab:
            word = UNK
        history = tuple(h if h == BOS or h in self.vocab else UNK for h in history)
        p = 1.0 / len(self.vocab)  # order 0: uniform over the vocabulary, <UNK> and </S>
        for n in range(1, self.order + 1):
            if n - 1 > len(history):
                break
            h = history[len(history) - n + 1 :]
            stats = self.contexts[n - 1].get(h)
            if stats is None:  # an unseen history: no longer one is seen either
                break
            total, removed = stats
            a = self.counts[n - 1].get((*h, word), 0)
            kept = a - min(a, self.discounts[n - 1][min(a, 3) - 1]) if a else 0.0
            p = (kept + removed * p) / total
        return p

    def evaluate(self, sentences: list[list[str]]) -> dict:
        """Perplexity over every predicted token (``</S>`` and ``<UNK>`` included) and OOVs."""
        log_prob, n_tokens, n_oov = 0.0, 0, 0
        for sentence in sentences:
            padded = [BOS, *sentence, EOS]
            for i in range(1, len(padded)):
                history = padded[max(0, i - self.order + 1) : i]
                log_prob += math.log(self.prob(padded[i], history))
            n_tokens += len(padded) - 1
            n_oov += sum(w not in self.vocab for w in sentence)
        words = n_tokens - len(sentences)
        return {
            "perplexity": math.exp(-log_prob / n_tokens),
            "tokens": n_tokens,
            "oov_rate": n_oov / words if words else 0.0,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=Path("data/fortunes/train.txt"))
    parser.add_argument("--valid", type=Path, default=Path("data/fortunes/valid.txt"))
    parser.add_argument("--test", type=Path, default=Path("data/fortunes/test.txt"))
    parser.add_argument("--order", type=int, default=5)
    args = parser.parse_args()
    if args.order < 1:
        sys.exit(f"error: --order must be >= 1, got {args.order}")

    start = time.perf_counter()
    train = read_sentences(args.train)
    evals = {"valid": read_sentences(args.valid), "test": read_sentences(args.test)}
    counts = ngram_counts(train, args.order)
    rows = []
    for order in range(1, args.order + 1):
        lm = KneserNey(train, order, counts)
        row = {"order": order}
        results = {name: lm.evaluate(sentences) for name, sentences in evals.items()}
        for name, result in results.items():
            row[f"{name} ppl"] = f"{result['perplexity']:.2f}"
        row["D1, D2, D3+ (top order)"] = ", ".join(f"{d:.3f}" for d in lm.discounts[-1])
        row["n-grams (top order)"] = len(lm.counts[-1])
        rows.append(row)
    print(
        f"train: {args.train} ({sum(map(len, train))} words, {len(train)} sentences, "
        f"vocabulary {len(lm.vocab)} with </S> and <UNK>)"
    )
    for name, result in results.items():  # tokens and OOVs are the same for every order
        print(
            f"{name}: {result['tokens']} tokens scored (</S> included), "
            f"OOV rate {100 * result['oov_rate']:.2f}% of words"
        )
    print(format_table(rows))
    print(f"time: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
