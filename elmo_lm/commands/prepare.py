"""Raw text into a training corpus: ``elmo-prepare input=FILES out=DIR [key=value ...]`` (or
``python prepare.py``).

Reads plain or compressed (``.gz``, ``.bz2``, ``.xz``) text, a sentence per line
(``format=lines``) or running text split into sentences (``format=documents``), tokenizes it
(``tokenizer=moses lang=en``, or ``whitespace`` for tokenized text; Unicode NFC unless
``normalize=none``) in ``workers`` processes, drops exact duplicates, shuffles with ``seed`` and
writes ``train/part-*.txt`` (``shards``), ``valid.txt``, ``test.txt``, ``vocab.txt``,
``vocab_counts.txt``, ``tokenizer.json`` and ``corpus.json`` (with the report it prints) in
``out``. ``valid``/``test``: a share (``0.01``) or a count (``5000``). docs/PREPARE.md.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from elmo_lm.commands.args import REQUIRED, parse_args
from elmo_lm.console import format_table
from elmo_lm.data.prepare import prepare_corpus
from elmo_lm.data.prepare_read import STREAMS, PrepareError, input_files, read_items
from elmo_lm.data.prepare_report import report_rows
from elmo_lm.errors import user_errors
from elmo_lm.formats.tokenize import TokenizerSpec

USAGE = (
    "elmo-prepare input=FILES_OR_GLOBS out=DIR [format=lines|documents] "
    "[tokenizer=moses|whitespace] [lang=en] [normalize=NFC|none] [valid=0.01] [test=0.01] "
    "[shards=16] [seed=0] [workers=0] [buckets=0] [overwrite=false] [min_words=1] "
    "[max_tokens=0] [batch_size=32] [unroll_steps=20] [world_size=1] [time_steps=3] "
    "[progress=true]"
)
DEFAULTS = {
    "input": REQUIRED,  # a path, a glob or [a,b]; .gz .bz2 .xz read as streams
    "out": REQUIRED,  # the corpus directory written (new or empty, or overwrite=true)
    "format": "lines",  # lines: a sentence per line; documents: running text, paragraphs
    "tokenizer": "moses",
    "lang": "en",  # Moses' language code
    "normalize": "NFC",  # none: keep the text as it is
    "valid": "0.01",  # a share (< 1) or a count of sentences
    "test": "0.01",
    "shards": 16,  # train files
    "seed": 0,
    "workers": 0,  # tokenizing processes; 0: every core
    "buckets": 0,  # bucket files of the shuffle; 0: one per 32 MiB of input (4 at least)
    "overwrite": False,
    "min_words": 1,  # sentences with fewer word tokens are dropped
    "max_tokens": 0,  # sentences with more tokens are dropped; 0: no limit
    "batch_size": 32,  # as conf/data/sample.yaml, for the steps per epoch
    "unroll_steps": 20,
    "world_size": 1,
    "time_steps": 3,  # training steps of the suggested model timed; 0: not timed
    "progress": True,
}
BUCKET_BYTES = 32 << 20  # of text per bucket: each is read whole into memory once
COMPRESSION = 4  # a compressed input's text, estimated, per byte


def _amount(key: str, text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = -1
    if value < 0 or (value >= 1 and value != int(value)):
        raise PrepareError(f"{key}={text}: a share below 1 (0.01) or a whole count (5000)")
    return value


def n_buckets(files: list[str]) -> int:
    """One bucket per ``BUCKET_BYTES`` of text (compressed inputs: ``COMPRESSION`` x their
    size), 4 to 512 (each one an open file in pass 1)."""
    size = sum(
        os.path.getsize(p) * (COMPRESSION if os.path.splitext(p)[1].lower() in STREAMS else 1)
        for p in files
    )
    return max(4, min(512, math.ceil(size / BUCKET_BYTES)))


def time_epoch(report: dict, steps: int) -> dict | None:
    """Seconds per training step of the suggested model (``steps`` timed after one warm-up,
    on a Zipf batch of the report's shape and vocabulary size) and the epoch they make."""
    if steps <= 0:
        return None
    import torch
    from omegaconf import OmegaConf

    from elmo_lm.training.audit import TrainStep
    from elmo_lm.training.config import model_options
    from elmo_lm.training.module import ElmoLM
    from elmo_lm.training.synthetic import synthetic_vocab, zipf_batch

    name = report["suggested"]["model"]
    shape = report["steps_per_epoch"]
    root = Path(__file__).resolve().parents[2]
    options = model_options(OmegaConf.load(root / "conf" / "model" / f"{name}.yaml"))
    vocab = synthetic_vocab(max(report["suggested"]["vocab_size"], 16))
    options.n_tokens_vocab, options.unroll_steps = len(vocab), shape["unroll_steps"]
    torch.manual_seed(0)
    module = ElmoLM(options.to_dict(), vocab).train()
    batch = zipf_batch(vocab, shape["batch_size"], shape["unroll_steps"])
    step = TrainStep(module, module.configure_optimizers(), batch, "accelerator")
    step()  # warm-up: allocations, the first calls
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {
        "model": name,
        "step_seconds": seconds,
        "steps_timed": steps,
        "epoch_hours": seconds * shape["steps"] / 3600,
        "device": "cpu",
    }


def prepare(**args) -> dict:
    """Runs ``elmo-prepare`` with the keys of ``DEFAULTS``; returns ``corpus.json``."""
    files = input_files(args["input"])
    normalize = None if str(args["normalize"]).lower() in ("none", "null") else args["normalize"]
    try:
        spec = TokenizerSpec(args["tokenizer"], args["lang"], normalize)
    except ValueError as exc:
        raise PrepareError(str(exc)) from None
    if args["format"] not in ("lines", "documents"):
        raise PrepareError(f"format={args['format']}: use lines (a sentence per line) or documents")
    out = Path(args["out"])
    steps = args["time_steps"]
    return prepare_corpus(
        read_items(files, args["format"]),
        out,
        spec,
        format=args["format"],
        valid=_amount("valid", args["valid"]),
        test=_amount("test", args["test"]),
        shards=args["shards"],
        seed=args["seed"],
        workers=args["workers"] or None,
        n_buckets=args["buckets"] or n_buckets(files),
        overwrite=args["overwrite"],
        min_words=args["min_words"],
        max_tokens=args["max_tokens"],
        progress=args["progress"] or None,
        sources=files,
        batch_size=args["batch_size"],
        unroll_steps=args["unroll_steps"],
        world_size=args["world_size"],
        measure=lambda report: time_epoch(report, steps),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """``elmo-prepare key=value ...`` / ``python prepare.py key=value ...`` (``USAGE``)."""
    with user_errors():
        args = parse_args(argv, DEFAULTS, USAGE)
        corpus = prepare(**args)
    print(format_table(report_rows(corpus["report"])))
    if args["progress"]:
        out = args["out"]
        print(
            f"wrote {out}; train with data.train_files='{out}/train/*.txt' "
            f"data.valid_files={out}/valid.txt data.vocab_file={out}/vocab.txt",
            file=sys.stderr,
        )
