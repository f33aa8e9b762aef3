"""elmo-prepare's speed and memory: sentences/s per core on real text (the Debian fortunes
fixtures, repeated and varied so dedupe keeps them) for ``format=lines`` with Moses and for
``format=documents`` through the splitter, and ~1M generated sentences for the peak RSS
(``resource.getrusage``, this process and its workers). Prints a table.

Usage: python bench/bench_prepare.py [--sentences 1000000] [--real 40000] [--workers 0]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elmo_lm.console import format_table  # noqa: E402
from elmo_lm.data.prepare import prepare_corpus  # noqa: E402
from elmo_lm.data.prepare_read import split_sentences  # noqa: E402
from elmo_lm.formats.tokenize import PUBLISHED, TokenizerSpec  # noqa: E402

TEXT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "text" / "en_literature.txt"


def real_sentences(n: int) -> tuple[list[str], list[str]]:
    """``n`` raw English sentences of the fortunes fixture (cut by the splitter; each given a
    number, so each is new), and the same sentences as paragraphs of five."""
    fortunes = [" ".join(f.split()) for f in TEXT.read_text().split("\n%\n") if f.strip()]
    sentences = [s for f in fortunes for s in split_sentences(f)]
    lines = [f"{sentences[i % len(sentences)]} ({i})" for i in range(n)]
    return lines, [" ".join(lines[i : i + 5]) for i in range(0, n, 5)]


def peak_rss_mib() -> tuple[float, float]:
    """Peak RSS of this process and of its largest finished child, MiB (Linux: KiB)."""
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return me, children


def run(name: str, items, spec, format: str, workers: int, n_buckets: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        corpus = prepare_corpus(
            items, Path(tmp) / "out", spec, format, 0.01, 0.01, 16, 0, workers, n_buckets
        )
        seconds = time.perf_counter() - start
        size = sum(f.stat().st_size for f in Path(tmp, "out").rglob("*.txt"))
    s = corpus["report"]["sentences"]
    me, child = peak_rss_mib()
    return {
        "run": name,
        "workers": workers,
        "sentences": s["read"],
        "seconds": f"{seconds:.1f}",
        "sent/s": f"{s['read'] / seconds:,.0f}",
        "sent/s/core": f"{s['read'] / seconds / workers:,.0f}",
        "out MiB": f"{size / 2**20:.0f}",
        "peak RSS MiB (main / worker)": f"{me:.0f} / {child:.0f}",
    }


def generated(n: int, seed: int = 0):
    """``n`` made-up sentences of 5-40 words from a Zipf-ish 50k vocabulary (5% repeats)."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(50_000)]
    cum = list(itertools.accumulate(1 / (r + 1) for r in range(len(words))))
    kept = []
    for _ in range(n):
        if kept and rng.random() < 0.05:
            yield rng.choice(kept)
            continue
        line = " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(5, 40))) + " ."
        if len(kept) < 1000:
            kept.append(line)
        yield line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1_000_000)
    parser.add_argument("--real", type=int, default=40_000)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    workers = args.workers or os.cpu_count() or 1
    lines, docs = real_sentences(args.real)
    rows = [
        run("real text, lines, moses", iter(lines), PUBLISHED, "lines", workers, 8),
        run("real text, documents, syntok + moses", iter(docs), PUBLISHED, "documents", workers, 8),
    ]
    if args.sentences:
        rows.append(
            run(
                f"{args.sentences:,} generated, whitespace",
                generated(args.sentences),
                TokenizerSpec("whitespace"),
                "lines",
                workers,
                16,
            )
        )
    print(format_table(rows))


if __name__ == "__main__":
    main()
