"""Which sentences each data-loader worker of each DDP rank reads, in which order, and for how
many batches.

The corpus's sentences are numbered in file order (files sorted, optionally shuffled per epoch),
and sentence i belongs to shard ``i % n_shards``, where ``n_shards = world_size * num_workers``
and shard ``rank * num_workers + worker_id`` is read by one data-loader worker of one rank.
Shards are disjoint and their union is the corpus. Each shard's sentences pass through a shuffle
buffer seeded by (seed, epoch, shard, pass), so the order differs every epoch, is the same for the
same seed, and is replayed exactly when a run resumes mid-epoch. Every rank runs
``steps_per_epoch`` batches per epoch, split across its workers (``split_steps``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import get_worker_info

from elmo_lm.data.corpus import read_sentences


def steps_per_epoch(
    n_tokens_with_boundaries: int, batch_size: int, unroll_steps: int, world_size: int = 1
) -> int:
    """Batches per rank in one epoch: enough windows to read the corpus's tokens about once."""
    return max(1, n_tokens_with_boundaries // (world_size * batch_size * unroll_steps))


def split_steps(total: int, num_workers: int, worker_id: int) -> int:
    """The share of ``total`` batches that worker ``worker_id`` yields; the shares sum to total."""
    return total // num_workers + (1 if worker_id < total % num_workers else 0)


@dataclass(frozen=True)
class Shard:
    """Which sentences one data-loader worker of one rank reads, and which stream it is."""

    index: int
    count: int
    worker_id: int
    num_workers: int


def resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``(rank, world_size)`` as given, else from ``torch.distributed`` when initialised, else (0, 1)."""
    dist = torch.distributed
    initialised = dist.is_available() and dist.is_initialized()
    if world_size is None:
        world_size = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    if not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must lie in [0, world_size={world_size})")
    return rank, world_size


def current_worker() -> tuple[int, int]:
    """``(worker_id, num_workers)`` of the calling data-loader worker; (0, 1) without workers."""
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


def current_shard(rank: int, world_size: int) -> Shard:
    """The shard of the calling data-loader worker (or of the main process without workers)."""
    worker_id, num_workers = current_worker()
    return Shard(rank * num_workers + worker_id, world_size * num_workers, worker_id, num_workers)


def shard_sentences(files: Sequence[str], shard: Shard) -> Iterator[list[str]]:
    """One pass over the sentences of ``files`` that belong to ``shard``."""
    index = 0
    for path in files:
        for tokens in read_sentences(path):
            if index % shard.count == shard.index:
                yield tokens
            index += 1


def shuffled(items: Iterator[list[str]], buffer_size: int, rng: random.Random):
    """``items`` in a random order drawn through a buffer of ``buffer_size`` items.

    The buffer holds each sentence as one string, so memory is the buffer's sentences whatever
    the size of the corpus; an item moves on average about ``buffer_size`` places. A size of 0
    or 1 keeps the order.
    """
    if buffer_size <= 1:
        yield from items
        return
    buffer: list[str] = []
    for tokens in items:
        line = " ".join(tokens)
        if len(buffer) < buffer_size:
            buffer.append(line)
            continue
        j = rng.randrange(buffer_size)
        out, buffer[j] = buffer[j], line
        yield out.split(" ")
    rng.shuffle(buffer)
    for line in buffer:
        yield line.split(" ")
