"""Training and held-out batches, sharded across DDP ranks and data-loader workers.

Training reproduces the original ELMo trainer's stateful truncated BPTT: rows of endless packed
sentence streams cut into (B, T) windows (``elmo_lm.data.packing``), each row pulling the next
sentence of its shard (``elmo_lm.data.sharding``) when it needs one, so memory is a few sentences
per row, plus the shuffle buffer, whatever the size of the corpus. A shard that runs out of
sentences first starts again from its beginning, so no rank stops early and none waits.

Held-out text is scored as the original's ``test()`` scores it: as streams with the LSTM state
carried from one window to the next (``HeldOutStreams``); ``ValidationSentences`` scores each
sentence on its own from a zero state.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import torch
from torch.utils.data import IterableDataset

from elmo_lm.data.corpus import CorpusError, Files, corpus_files, read_sentences
from elmo_lm.data.packing import (
    Batch,
    CharIdCache,
    input_ids,
    long_tensor,
    packed_windows,
    window_batch,
)
from elmo_lm.data.sharding import (
    Shard,
    current_shard,
    current_worker,
    resolve_rank,
    shard_sentences,
    shuffled,
    split_steps,
    steps_per_epoch,
)
from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.formats.characters import BOS_TOKEN, EOS_TOKEN, MAX_CHARACTERS_PER_TOKEN


class _CorpusBatches(IterableDataset):
    """What the training and held-out datasets share: the corpus files, the vocabulary, the
    width of a token's characters, and this process's DDP rank."""

    def __init__(
        self,
        files: Files,
        vocab: Vocabulary,
        sizes: dict[str, int],
        max_characters_per_token: int | None,
        rank: int | None,
        world_size: int | None,
    ):
        super().__init__()
        if any(size < 1 for size in sizes.values()):
            given = ", ".join(f"{name}={size}" for name, size in sizes.items())
            raise ValueError(f"{given}: must be >= 1")
        self.files = corpus_files(files)
        self.vocab = vocab
        self.max_characters_per_token = max_characters_per_token
        self.rank, self.world_size = resolve_rank(rank, world_size)

    def char_cache(self) -> CharIdCache | None:
        """A fresh cache of char ids, or None where ``max_characters_per_token`` is None: the
        batches of a word-input LM, which reads no characters, carry ids alone."""
        if self.max_characters_per_token is None:
            return None
        return CharIdCache(self.max_characters_per_token)


class TrainStream(_CorpusBatches):
    """Endless packed sentence streams cut into (B, T) windows, as the original ELMo trained.

    Each batch is a dict: ``fwd_chars``/``bwd_chars`` (B, T, C) long char ids of the input tokens,
    ``fwd_targets``/``bwd_targets`` (B, T) long vocabulary ids of the next tokens (unknown ->
    ``<UNK>``), ``tokens``/``token_index`` (the distinct input tokens of both directions and
    where they go, at capacities of a fixed ladder: ``elmo_lm.data.packing.distinct_tokens``),
    ``stream_id`` (the data-loader worker whose sentences the rows carry on: the
    worker id, but for a resume mid-epoch, see ``resume``) and ``reset`` (True on the first
    batch of each epoch only, not on the first after a resume). Use with
    ``DataLoader(batch_size=None)``.

    Args:
        files: training corpus (path, glob, or list).
        vocab: maps target tokens to ids.
        n_tokens_with_boundaries: tokens of the corpus plus two per sentence; sets the epoch length.
        batch_size: B, rows per batch (per rank).
        unroll_steps: T, tokens per row per batch.
        max_characters_per_token: C; None for a word-input LM (ids, no char ids).
        rank, world_size: this process's DDP rank; None reads them from ``torch.distributed``.
        seed: seeds the per-epoch file order and sentence shuffling.
        shuffle_files: shuffle the order of the files every epoch.
        shuffle_buffer: sentences held to shuffle each shard's order every epoch; 0 keeps
            the file order.
    """

    def __init__(
        self,
        files: Files,
        vocab: Vocabulary,
        n_tokens_with_boundaries: int,
        batch_size: int = 128,
        unroll_steps: int = 20,
        max_characters_per_token: int | None = MAX_CHARACTERS_PER_TOKEN,
        rank: int | None = None,
        world_size: int | None = None,
        seed: int = 0,
        shuffle_files: bool = False,
        shuffle_buffer: int = 0,
    ):
        sizes = {"batch_size": batch_size, "unroll_steps": unroll_steps}
        super().__init__(files, vocab, sizes, max_characters_per_token, rank, world_size)
        self.batch_size = batch_size
        self.unroll_steps = unroll_steps
        self.steps_per_epoch = steps_per_epoch(
            n_tokens_with_boundaries, batch_size, unroll_steps, self.world_size
        )
        self.seed = seed
        self.shuffle_files = shuffle_files
        self.shuffle_buffer = max(0, shuffle_buffer)
        # Counts the epochs this copy has started; with persistent workers every worker's copy
        # counts the same, so all shards agree on the file order. set_epoch() overrides it.
        self.epoch = 0
        self._skip = 0  # batches of the next iteration already trained on (see resume)

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch of the next iteration (it picks the file order)."""
        self.epoch = epoch

    def resume(self, epoch: int, batches_done: int) -> None:
        """The next iteration continues ``epoch`` after its first ``batches_done`` batches.

        For a run resumed from a checkpoint saved mid-epoch: the batches already trained on
        are read and dropped (no tensors are built), so no sentence is seen twice or skipped.
        With data-loader workers the count is split as the loader interleaves them (round
        robin), each worker dropping its own share; a loader worker then carries on another's
        sentences, and its batches carry that worker's ``stream_id``, the stream whose LSTM
        state the checkpoint saved. The first batch after the resume is no ``reset``.
        """
        self.epoch = epoch
        self._skip = max(0, batches_done)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def epoch_files(self, epoch: int) -> list[str]:
        """The file order of ``epoch``: sorted, or shuffled with ``seed + epoch``."""
        files = list(self.files)
        if self.shuffle_files:
            random.Random(self.seed + epoch).shuffle(files)
        return files

    def __iter__(self) -> Iterator[Batch]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        shard = current_shard(self.rank, self.world_size)
        if self._skip:
            # The loader interleaves its workers round robin from worker 0, and batch j of the
            # epoch belongs to worker j % num_workers' sentences: after k batches, loader worker
            # w continues the sentences of worker (w + k) % num_workers, past its share of k.
            worker = (shard.worker_id + self._skip) % shard.num_workers
            shard = Shard(
                shard.index - shard.worker_id + worker, shard.count, worker, shard.num_workers
            )
        skip = len(range(shard.worker_id, self._skip, shard.num_workers))
        self._skip = 0
        n_steps = split_steps(self.steps_per_epoch, shard.num_workers, shard.worker_id)
        sentences = self._endless(self.epoch_files(epoch), shard, epoch)
        chars = self.char_cache()
        windows = packed_windows(
            self.vocab, self.batch_size, self.unroll_steps, lambda row: next(sentences)
        )
        for step, window in enumerate(itertools.islice(windows, n_steps)):
            if step >= skip:
                # A resumed stream carries on the state its checkpoint saved for it (the module
                # starts it from zeros where the checkpoint has none).
                yield window_batch(
                    window, chars, shard.worker_id, step == 0, distinct=True, vocab=self.vocab
                )

    def _endless(self, files: list[str], shard: Shard, epoch: int) -> Iterator[list[str]]:
        for n_pass in itertools.count():
            rng = random.Random(f"{self.seed}/{epoch}/{shard.index}/{n_pass}")
            n = 0
            for tokens in shuffled(shard_sentences(files, shard), self.shuffle_buffer, rng):
                n += 1
                yield tokens
            if n == 0:
                raise CorpusError(
                    f"{self.files[0]}{' ...' if len(self.files) > 1 else ''}: fewer sentences "
                    f"than the {shard.count} shards ({shard.count // shard.num_workers} ranks x "
                    f"{shard.num_workers} data-loader workers), each of which reads its own; use "
                    f"fewer trainer.devices{' or data.num_workers' if shard.num_workers > 1 else ''}"
                    ", or a larger corpus"
                )


class ValidationSentences(_CorpusBatches):
    """Held-out batches of whole sentences, one per row, right-padded; ``reset`` always True.

    Forward rows are inputs ``<S> w1 .. wn`` with targets ``w1 .. wn </S>``; backward rows are
    inputs ``</S> wn .. w1`` with targets ``wn .. w1 <S>``; padding has all-zero chars and target
    -1. A sentence longer than ``max_sentence_tokens`` words is split into pieces of at most that
    many words, each scored as a sentence of its own (bounds the memory of one batch).

    Pieces are numbered in file order and piece i belongs to shard ``i % n_shards`` (see
    ``elmo_lm.data.sharding``). Every worker of every rank yields the same number of batches,
    topping up with all-padding batches (they count nothing), so all ranks run the same number
    of steps and every target is counted exactly once.

    Args:
        files: held-out corpus (path, glob, or list).
        vocab: maps target tokens to ids.
        batch_size: sentences per batch.
        max_characters_per_token: C; None for a word-input LM (ids, no char ids).
        max_sentence_tokens: longest piece, in words.
        rank, world_size: this process's DDP rank; None reads them from ``torch.distributed``.
        num_workers: the DataLoader's ``num_workers`` (it sets ``len()``, the batches per rank).
    """

    def __init__(
        self,
        files: Files,
        vocab: Vocabulary,
        batch_size: int = 64,
        max_characters_per_token: int | None = MAX_CHARACTERS_PER_TOKEN,
        max_sentence_tokens: int = 400,
        rank: int | None = None,
        world_size: int | None = None,
        num_workers: int = 0,
    ):
        sizes = {"batch_size": batch_size, "max_sentence_tokens": max_sentence_tokens}
        super().__init__(files, vocab, sizes, max_characters_per_token, rank, world_size)
        self.batch_size = batch_size
        self.max_sentence_tokens = max_sentence_tokens
        self.num_workers = max(1, num_workers)
        self.n_pieces = sum(1 for _ in self._pieces())  # one streaming pass; checks every file

    def _pieces(self) -> Iterator[list[str]]:
        cap = self.max_sentence_tokens
        for path in self.files:
            for tokens in read_sentences(path):
                for start in range(0, len(tokens), cap):
                    yield tokens[start : start + cap]

    def batches_per_worker(self, num_workers: int) -> int:
        """Batches each worker yields: enough for the largest shard."""
        n_shards = self.world_size * num_workers
        largest_shard = -(-self.n_pieces // n_shards)
        return -(-largest_shard // self.batch_size)

    def __len__(self) -> int:
        return self.num_workers * self.batches_per_worker(self.num_workers)

    def __iter__(self) -> Iterator[Batch]:
        shard = current_shard(self.rank, self.world_size)
        if shard.num_workers != self.num_workers:
            raise ValueError(
                f"ValidationSentences(num_workers={self.num_workers}) is read by "
                f"{shard.num_workers} data-loader workers; pass the DataLoader's num_workers"
            )
        chars = self.char_cache()
        pieces = (p for i, p in enumerate(self._pieces()) if i % shard.count == shard.index)
        for _ in range(self.batches_per_worker(shard.num_workers)):
            batch = [p for _, p in zip(range(self.batch_size), pieces, strict=False)]
            yield self._batch(batch, chars, shard.worker_id)

    def _batch(
        self, sentences: list[list[str]], chars: CharIdCache | None, stream_id: int
    ) -> Batch:
        B = max(1, len(sentences))  # an all-padding batch keeps one row
        T = max((len(s) + 1 for s in sentences), default=1)
        fwd_tokens, bwd_tokens = [[""] * T for _ in range(B)], [[""] * T for _ in range(B)]
        fwd_targets = torch.full((B, T), -1, dtype=torch.long)  # -1: no target (padding)
        bwd_targets = torch.full((B, T), -1, dtype=torch.long)
        for row, words in enumerate(sentences):
            n = len(words) + 1
            sentence = [BOS_TOKEN, *words, EOS_TOKEN]
            ids = torch.tensor(self.vocab.encode(sentence))
            fwd_tokens[row][:n] = sentence[:-1]
            bwd_tokens[row][:n] = sentence[:0:-1]
            fwd_targets[row, :n] = ids[1:]
            bwd_targets[row, :n] = ids[:-1].flip(0)
        batch: Batch = {
            "fwd_targets": fwd_targets,  # (B, T)
            "bwd_targets": bwd_targets,
            "fwd_ids": long_tensor([input_ids(self.vocab, row) for row in fwd_tokens]),
            "bwd_ids": long_tensor([input_ids(self.vocab, row) for row in bwd_tokens]),
            "stream_id": stream_id,
            "reset": True,
        }
        if chars is not None:
            batch["fwd_chars"], batch["bwd_chars"] = (
                chars(fwd_tokens),
                chars(bwd_tokens),
            )  # (B, T, C)
        return batch


class HeldOutStreams(_CorpusBatches):
    """Held-out text as the original's ``test()`` reads it: streams, the LSTM state carried.

    Sentence i of the held-out files (in file order) belongs to stream ``i % n_streams``; each
    stream packs its sentences as training does (n + 1 pairs per sentence, ``</S>`` never an
    input) and starts from a zero state. Every target of every stream is scored once: the last
    window of a stream is padded (all-zero chars, target -1), where the original dropped its last
    incomplete batch. Stream s is read by DDP rank ``s % world_size`` and, on that rank, by
    data-loader worker ``(s // world_size) % num_workers``; the rows of a batch are that worker's
    streams. Every worker of every rank yields the same number of batches (enough for the
    longest stream), so the summed result is that of ``n_streams`` streams whatever the number of
    ranks and workers.

    Batches are as ``TrainStream``'s: ``reset`` is True on a worker's first batch, then the
    state carries on.

    Args:
        files: held-out corpus (path, glob, or list).
        vocab: maps target tokens to ids.
        n_streams: streams over the whole held-out text, across all ranks.
        unroll_steps: tokens per row per batch (the result does not depend on it).
        max_characters_per_token: C; None for a word-input LM (ids, no char ids).
        rank, world_size: this process's DDP rank; None reads them from ``torch.distributed``.
        num_workers: the DataLoader's ``num_workers`` (it sets ``len()``, the batches per rank).
    """

    def __init__(
        self,
        files: Files,
        vocab: Vocabulary,
        n_streams: int = 64,
        unroll_steps: int = 20,
        max_characters_per_token: int | None = MAX_CHARACTERS_PER_TOKEN,
        rank: int | None = None,
        world_size: int | None = None,
        num_workers: int = 0,
    ):
        sizes = {"n_streams": n_streams, "unroll_steps": unroll_steps}
        super().__init__(files, vocab, sizes, max_characters_per_token, rank, world_size)
        self.n_streams = n_streams
        self.unroll_steps = unroll_steps
        self.num_workers = max(1, num_workers)
        lengths = [0] * n_streams  # pairs per stream; one streaming pass checks every file
        for i, tokens in enumerate(self._sentences()):
            lengths[i % n_streams] += len(tokens) + 1
        self.stream_lengths = lengths
        self.n_batches = max(1, -(-max(lengths) // unroll_steps))

    def _sentences(self) -> Iterator[list[str]]:
        for path in self.files:
            yield from read_sentences(path)

    def streams_of(self, worker_id: int, num_workers: int) -> list[int]:
        """The streams one data-loader worker of this rank reads, as the rows of its batches."""
        mine = range(self.rank, self.n_streams, self.world_size)
        return list(mine[worker_id::num_workers])

    def __len__(self) -> int:
        return self.num_workers * self.n_batches

    def __iter__(self) -> Iterator[Batch]:
        worker_id, num_workers = current_worker()
        if num_workers != self.num_workers:
            raise ValueError(
                f"HeldOutStreams(num_workers={self.num_workers}) is read by {num_workers} "
                "data-loader workers; pass the DataLoader's num_workers"
            )
        streams = self.streams_of(worker_id, num_workers)
        row_of = {s: r for r, s in enumerate(streams)}
        pending: list[list[list[str]]] = [[] for _ in streams]  # sentences read ahead, per row
        reader = enumerate(self._sentences())

        def next_sentence(row: int) -> list[str] | None:
            if row >= len(streams):  # a worker without streams: one row of padding
                return None
            while not pending[row]:
                i, tokens = next(reader, (None, None))
                if i is None:
                    return None
                if i % self.n_streams in row_of:
                    pending[row_of[i % self.n_streams]].append(tokens)
            return pending[row].pop(0)

        chars = self.char_cache()
        windows = packed_windows(self.vocab, max(1, len(streams)), self.unroll_steps, next_sentence)
        for step, window in enumerate(itertools.islice(windows, self.n_batches)):
            yield window_batch(window, chars, worker_id, step == 0, distinct=True, vocab=self.vocab)
