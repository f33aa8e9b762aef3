"""Raw text into the corpus ``train.py`` reads: tokenized in parallel, exact duplicates dropped,
shuffled through buckets on disk, split into train shards, valid and test, with its vocabulary.

Memory does not grow with the corpus: pass 1 tokenizes chunks of lines in worker processes,
each sentence going to the bucket file its 8-byte hash (keyed by the seed) names, so equal
sentences meet in one bucket; pass 2 dedupes and shuffles each bucket in memory (in the
workers); pass 3 streams the buckets in order into valid, test and the train shards, counting
the tokens. Everything is written in a temporary directory beside ``out`` and renamed at the end.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import shutil
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from elmo_lm.console import progress_bar
from elmo_lm.data.corpus import CORPUS_FILE
from elmo_lm.data.prepare_read import PrepareError, split_sentences
from elmo_lm.data.prepare_report import corpus_report, steps_per_epoch
from elmo_lm.data.vocabulary import SPECIAL_TOKENS, Vocabulary
from elmo_lm.formats.atomic import write_text
from elmo_lm.formats.tokenize import (
    TOKENIZER_FILE,
    TokenizerSpec,
    attached_punctuation,
    make_tokenizer,
)

CHUNK_CHARS = 1 << 18  # raw text per task sent to a worker
_INFLIGHT = 3  # tasks per worker queued at once: bounds the memory of pass 1


@dataclass(frozen=True)
class Settings:
    """What the workers need to cut and file a chunk (sent once to each)."""

    spec: TokenizerSpec
    format: str = "lines"
    n_buckets: int = 16
    seed: int = 0
    min_words: int = 1  # sentences with fewer tokens holding a letter or digit are dropped
    max_tokens: int = 0  # sentences with more tokens are dropped; 0: no limit


_worker: dict = {}


def _init(settings: Settings) -> None:
    _worker["settings"] = settings
    _worker["tokenize"] = make_tokenizer(settings.spec)
    _worker["key"] = settings.seed.to_bytes(8, "little", signed=True)


def _cut(items: list[str]) -> tuple[int, int, int, float, dict[int, bytes]]:
    """Pass 1 on a chunk: (sentences read, dropped by length, tokens, attached punctuation share
    of the first sentences, bucket -> lines)."""
    s: Settings = _worker["settings"]
    tokenize, key = _worker["tokenize"], _worker["key"]
    groups: dict[int, list[bytes]] = {}
    n_read = n_dropped = n_tokens = 0
    sample: list[str] = []
    for item in items:
        for sentence in split_sentences(item) if s.format == "documents" else (item,):
            n_read += 1
            tokens = " ".join(tokenize(sentence)).split()  # no space left inside a token
            if len(sample) < 2000:
                sample += tokens
            words = sum(1 for t in tokens if any(c.isalnum() for c in t))
            if not tokens or words < s.min_words or (s.max_tokens and len(tokens) > s.max_tokens):
                n_dropped += 1
                continue
            n_tokens += len(tokens)
            line = (" ".join(tokens) + "\n").encode("utf-8", "replace")
            h = int.from_bytes(hashlib.blake2b(line, digest_size=8, key=key).digest(), "little")
            groups.setdefault(h % s.n_buckets, []).append(line)
    out = {b: b"".join(lines) for b, lines in groups.items()}
    return n_read, n_dropped, n_tokens, attached_punctuation(sample), out


def _dedupe_shuffle(args: tuple[str, int, int]) -> tuple[int, int]:
    """Pass 2 on a bucket file: drops exact repeats (by 8-byte hash), shuffles with the seed and
    the bucket's number, rewrites it; returns (kept, duplicates)."""
    path, seed, number = args
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    seen: set[bytes] = set()
    kept = []
    for line in lines:
        h = hashlib.blake2b(line, digest_size=8).digest()
        if h not in seen:
            seen.add(h)
            kept.append(line)
    random.Random(f"{seed}-{number}").shuffle(kept)
    with open(path, "wb") as f:
        f.writelines(kept)
    return len(kept), len(lines) - len(kept)


def split_sizes(n: int, valid: float, test: float) -> tuple[int, int]:
    """Sentences of valid and test: a share (< 1, e.g. 0.01) or a count (>= 1, e.g. 5000)."""
    sizes = [round(n * x) if x < 1 else int(x) for x in (valid, test)]
    for name, x in (("valid", valid), ("test", test)):
        if x < 0 or (x >= 1 and x != int(x)):
            raise PrepareError(f"{name}={x}: a share below 1 (0.01) or a whole count (5000)")
    if sum(sizes) >= n:
        raise PrepareError(
            f"valid={valid} test={test}: take {sum(sizes)} of the {n} sentences kept, leaving "
            "none to train on; give smaller shares or counts, or more text"
        )
    return sizes[0], sizes[1]


def check_out(out: Path, overwrite: bool) -> None:
    """Refuses an ``out`` that is a file, or a directory holding files (unless ``overwrite``)."""
    if out.exists() and not out.is_dir():
        raise PrepareError(f"out={out}: is a file; give a directory to write the corpus in")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise PrepareError(
            f"out={out}: exists and is not empty; give a new directory or overwrite=true"
        )


def prepare_corpus(
    items: Iterable[str],
    out: str | os.PathLike,
    spec: TokenizerSpec,
    format: str = "lines",
    valid: float = 0.01,
    test: float = 0.01,
    shards: int = 16,
    seed: int = 0,
    workers: int | None = None,
    n_buckets: int = 16,
    overwrite: bool = False,
    min_words: int = 1,
    max_tokens: int = 0,
    progress: bool | None = None,
    sources: list[str] | None = None,
    batch_size: int = 32,
    unroll_steps: int = 20,
    world_size: int = 1,
    measure=None,
) -> dict:
    """Writes a prepared corpus in ``out`` from raw sentences or paragraphs; returns ``corpus.json``.

    Args:
        items: raw sentences (``format="lines"``) or paragraphs of running text
            (``"documents"``, split by ``split_sentences``), read lazily.
        out: the directory written: ``train/part-NNNNN.txt``, ``valid.txt``, ``test.txt``,
            ``vocab.txt``, ``vocab_counts.txt``, ``tokenizer.json``, ``corpus.json``.
        spec: the tokenizer.
        valid, test: a share of the kept sentences (< 1) or a count.
        shards: train files (fewer when there are fewer sentences).
        seed: the shuffle (the same seed and input give the same files, for any ``workers``).
        workers: tokenizing processes; None: every core.
        n_buckets: bucket files of the shuffle (each is read whole into memory once).
        sources: the input files, recorded in ``corpus.json``.
        batch_size, unroll_steps, world_size: the training shape of the report's steps per epoch.
        measure: called with the report before it is written; what it returns (a dict, or
            None) is stored as the report's ``epoch_time``.

    Raises:
        PrepareError: a bad setting, no sentence left, or ``out`` not empty.
    """
    out = Path(out)
    check_out(out, overwrite)
    if shards < 1 or n_buckets < 1:
        raise PrepareError(f"shards={shards}: must be >= 1")
    workers = workers or os.cpu_count() or 1
    settings = Settings(spec, format, n_buckets, seed, min_words, max_tokens)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.prepare-{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    pool = None
    try:
        if workers > 1:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            pool = context.Pool(workers, _init, (settings,))
        else:
            _init(settings)
        buckets = [tmp / "buckets" / f"b-{b:05d}.txt" for b in range(n_buckets)]
        buckets[0].parent.mkdir()
        read = _pass1(items, buckets, pool, workers, progress)
        run = pool.imap if pool is not None else map
        jobs = [(str(p), seed, b) for b, p in enumerate(buckets)]
        kept_dups = list(run(_dedupe_shuffle, jobs))
        if pool is not None:
            pool.close()
        n_kept = sum(k for k, _ in kept_dups)
        if n_kept == 0:
            raise PrepareError(
                f"{(sources or ['input'])[0]}{' ...' if sources and len(sources) > 1 else ''}: "
                "no sentence left to train on (empty, or every sentence dropped)"
            )
        n_valid, n_test = split_sizes(n_kept, valid, test)
        layout, counts = _pass3(buckets, tmp, n_kept, n_valid, n_test, shards, progress)
        shutil.rmtree(tmp / "buckets")
        report = corpus_report(read, kept_dups, layout["sentences"], counts, _ranked(counts))
        steps = steps_per_epoch(report, batch_size, unroll_steps, world_size)
        report["steps_per_epoch"] = {
            "batch_size": batch_size,
            "unroll_steps": unroll_steps,
            "world_size": world_size,
            "steps": steps,
        }
        report["epoch_time"] = measure(report) if measure is not None else None
        corpus = _finish(tmp, spec, layout, counts, report, sources, format, seed)
        _replace(tmp, out)
    except BaseException:
        if pool is not None:
            pool.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return corpus


def _pass1(items, buckets, pool, workers, progress) -> dict:
    """Tokenizes ``items`` in chunks (in order, at most ``_INFLIGHT`` per worker in flight)
    into the bucket files; returns what was read."""
    read = {"sentences": 0, "dropped_length": 0, "tokens": 0, "attached": 0.0}
    files = [open(p, "ab", buffering=1 << 16) for p in buckets]
    pending: deque = deque()

    def take(result) -> None:
        n_read, n_dropped, n_tokens, attached, groups = result
        if not read["sentences"]:
            read["attached"] = attached
        read["sentences"] += n_read
        read["dropped_length"] += n_dropped
        read["tokens"] += n_tokens
        bar.update(n_read)
        for b, data in groups.items():
            files[b].write(data)

    try:
        with progress_bar(None, "tokenizing", "sent", progress) as bar:
            for chunk in _chunks(items):
                if pool is None:
                    take(_cut(chunk))
                    continue
                pending.append(pool.apply_async(_cut, (chunk,)))
                while len(pending) >= _INFLIGHT * workers:
                    take(pending.popleft().get())
            while pending:
                take(pending.popleft().get())
    finally:
        for f in files:
            f.close()
    return read


def _chunks(items: Iterable[str]):
    chunk, size = [], 0
    for item in items:
        chunk.append(item)
        size += len(item)
        if size >= CHUNK_CHARS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _pass3(buckets, tmp: Path, n: int, n_valid: int, n_test: int, shards: int, progress):
    """Streams the shuffled buckets into valid, test and the train shards; counts the tokens."""
    n_train = n - n_valid - n_test
    shards = min(shards, n_train)
    (tmp / "train").mkdir()
    names = ["valid.txt", "test.txt"] + [f"train/part-{i:05d}.txt" for i in range(shards)]
    # position i of the shuffled stream: valid, then test, then shard by shard, near-equal sizes
    ends = [n_valid, n_valid + n_test] + [
        n_valid + n_test + (i + 1) * n_train // shards for i in range(shards)
    ]
    counts = {"train": Counter(), "valid": Counter(), "test": Counter()}
    target, position = 0, 0
    f = open(tmp / names[0], "wb")
    try:
        with progress_bar(n, "writing", "sent", progress) as bar:
            for bucket in buckets:
                with open(bucket, "rb") as b:
                    lines = b.read().splitlines(keepends=True)
                for line in lines:
                    while position >= ends[target]:
                        f.close()
                        target += 1
                        f = open(tmp / names[target], "wb")
                    f.write(line)
                    split = "valid" if target == 0 else "test" if target == 1 else "train"
                    counts[split].update(line.decode("utf-8").split())
                    position += 1
                bar.update(len(lines))
                del lines
        while target < len(names) - 1:  # splits left empty (valid=0, test=0)
            f.close()
            target += 1
            f = open(tmp / names[target], "wb")
    finally:
        f.close()
    layout = {
        "train_files": names[2:],
        "valid_files": ["valid.txt"] if n_valid else [],
        "test_files": ["test.txt"] if n_test else [],
        "sentences": {"train": n_train, "valid": n_valid, "test": n_test},
    }
    return layout, counts


def _ranked(counts: dict) -> list[str]:
    """Train tokens as ``Vocabulary.build`` ranks them: by descending count, ties by first
    occurrence (a Counter keeps that order and ``sorted`` is stable)."""
    train = counts["train"]
    return sorted((t for t in train if t not in SPECIAL_TOKENS), key=lambda t: -train[t])


def _finish(tmp, spec, layout, counts, report, sources, format, seed) -> dict:
    train = counts["train"]
    vocab = Vocabulary([*SPECIAL_TOKENS, *_ranked(counts)])
    vocab.save(tmp / "vocab.txt")
    n = layout["sentences"]["train"]
    special = {"<S>": n, "</S>": n, "<UNK>": 0}
    write_text(
        tmp / "vocab_counts.txt",
        "".join(f"{t} {special.get(t, train[t])}\n" for t in vocab.tokens),
    )
    spec.save(tmp / TOKENIZER_FILE)
    corpus = {
        "train_files": layout["train_files"],
        "valid_files": layout["valid_files"],
        "test_files": layout["test_files"],
        "vocab_file": "vocab.txt",
        "counts_file": "vocab_counts.txt",
        "tokenizer": spec.to_dict(),
        "format": format,
        "seed": seed,
        "sources": list(sources or []),
        "report": report,
    }
    write_text(tmp / CORPUS_FILE, json.dumps(corpus, indent=2, ensure_ascii=False) + "\n")
    return corpus


def _replace(tmp: Path, out: Path) -> None:
    """``tmp`` becomes ``out``; an ``out`` there before (``overwrite``) is removed after."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}.tmp"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
