"""Training and validation batches, sharded across DDP ranks and data-loader workers.

Training reproduces the original ELMo trainer's stateful truncated BPTT (``bilm/data.py``
``_get_batch``): each of the B rows of a batch is an endless stream of (input, target) pairs. A
sentence ``<S> w1 .. wn </S>`` gives its n + 1 pairs ``<S>->w1 .. wn-></S>`` and the next sentence
follows at once, so ``</S>`` is never an input and ``<S>`` never a target. Each batch takes the
next T (``unroll_steps``) pairs of every row, so a sentence cut by the window continues in the same
row of the next batch. The backward LM reads the same sentences, each one reversed
(``</S> wn .. w1 <S>``), packed the same way. Rows pull the next sentence of their shard when they
need one, so memory is a few sentences per row, plus the shuffle buffer, whatever the size of the
corpus.

Sharding: the corpus's sentences are numbered in file order (files sorted, optionally shuffled per
epoch), and sentence i belongs to shard ``i % n_shards``, where ``n_shards = world_size *
num_workers`` and shard ``rank * num_workers + worker_id`` is read by one data-loader worker of one
rank. Shards are disjoint and their union is the corpus. Each shard's sentences pass through a
shuffle buffer seeded by (seed, epoch, shard, pass), so the order differs every epoch, is the
same for the same seed, and is replayed exactly when a run resumes mid-epoch. Every rank runs
``steps_per_epoch`` batches per epoch, split across its workers; a shard that runs out of
sentences first starts again from its beginning, so no rank stops early and none waits.

Held-out text is scored as the original's ``test()`` scores it: as streams with the LSTM state
carried from one window to the next (``HeldOutStreams``); ``ValidationSentences`` scores each
sentence on its own from a zero state.
"""

from __future__ import annotations

import array
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import IterableDataset, get_worker_info

from elmo_lm.data.vocabulary import CorpusError, Files, Vocabulary, corpus_files, read_sentences
from elmo_lm.formats.characters import (
    BOS_TOKEN,
    EOS_TOKEN,
    MAX_CHARACTERS_PER_TOKEN,
    token_to_char_ids,
)

Batch = dict[str, torch.Tensor | int | bool]


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


def current_shard(rank: int, world_size: int) -> Shard:
    """The shard of the calling data-loader worker (or of the main process without workers)."""
    info = get_worker_info()
    worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
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

    The buffer holds each sentence as one string (a few MB for 100k sentences), so memory does
    not grow with the corpus; an item moves on average about ``buffer_size`` places. A size of 0
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


def sentence_pairs(words: list[str], ids: list[int], reverse: bool = False):
    """The (input tokens, target ids) pairs of one sentence in a stream: ``<S> w1 .. wn`` ->
    ``w1 .. wn </S>`` (reversed text for the backward LM); ``ids`` are those of
    ``<S> w1 .. wn </S>``."""
    sentence = [BOS_TOKEN, *words, EOS_TOKEN]
    if reverse:
        sentence, ids = sentence[::-1], ids[::-1]
    return sentence[:-1], ids[1:]


def long_tensor(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """(B, T) int64 tensor of B equally long lists of ints, through a flat ``array``: a third
    of ``torch.tensor``'s time on nested lists (20 against 65 us for 32 x 20)."""
    flat = array.array("q", itertools.chain.from_iterable(rows))
    width = len(rows[0]) if len(rows) else 0
    if len(flat) != len(rows) * width:
        raise ValueError("long_tensor: the rows differ in length")
    if not flat:
        return torch.zeros(len(rows), width, dtype=torch.long)
    return torch.frombuffer(flat, dtype=torch.long).view(len(rows), width).clone()


class CharIdCache:
    """Character ids of the tokens seen so far, so that a batch is one gather, not B*T tuples."""

    def __init__(self, max_characters_per_token: int, max_entries: int = 2**18):
        self.max_chars = max_characters_per_token
        self.max_entries = max_entries
        self._clear()

    def _clear(self) -> None:
        self._index: dict[str, int] = {"": 0}  # row 0 is all zeros: padding
        self._table = torch.zeros(1024, self.max_chars, dtype=torch.int16)  # (entries, C)

    def __call__(self, tokens: Sequence[Sequence[str]]) -> torch.Tensor:
        """(B, T, C) long ids of equally long rows of tokens; the token ``""`` is padding."""
        if len(self._index) + sum(map(len, tokens)) > self.max_entries:
            self._clear()  # bounds memory on corpora with an unbounded number of distinct tokens
        index = self._index
        new = list(dict.fromkeys(t for row in tokens for t in row if t not in index))
        if new:  # one table write for all the batch's new tokens
            first = len(index)
            while first + len(new) > len(self._table):
                self._table = torch.cat([self._table, torch.zeros_like(self._table)])
            chars = [token_to_char_ids(t, self.max_chars) for t in new]
            self._table[first : first + len(new)] = torch.tensor(chars, dtype=torch.int16)
            index.update(zip(new, range(first, first + len(new))))
        return self._table[long_tensor([[index[t] for t in row] for row in tokens])].long()


class TrainStream(IterableDataset):
    """Endless packed sentence streams cut into (B, T) windows, as the original ELMo trained.

    Each batch is a dict: ``fwd_chars``/``bwd_chars`` (B, T, C) long char ids of the input tokens,
    ``fwd_targets``/``bwd_targets`` (B, T) long vocabulary ids of the next tokens (unknown ->
    ``<UNK>``), ``stream_id`` (the data-loader worker id) and ``reset`` (True on the first batch
    of each epoch). Use with ``DataLoader(batch_size=None)``.

    Args:
        files: training corpus (path, glob, or list).
        vocab: maps target tokens to ids.
        n_tokens_with_boundaries: tokens of the corpus plus two per sentence; sets the epoch length.
        batch_size: B, rows per batch (per rank).
        unroll_steps: T, tokens per row per batch.
        max_characters_per_token: C.
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
        max_characters_per_token: int = MAX_CHARACTERS_PER_TOKEN,
        rank: int | None = None,
        world_size: int | None = None,
        seed: int = 0,
        shuffle_files: bool = False,
        shuffle_buffer: int = 0,
    ):
        super().__init__()
        if batch_size < 1 or unroll_steps < 1:
            raise ValueError(f"batch_size={batch_size}, unroll_steps={unroll_steps}: must be >= 1")
        self.files = corpus_files(files)
        self.vocab = vocab
        self.batch_size = batch_size
        self.unroll_steps = unroll_steps
        self.max_characters_per_token = max_characters_per_token
        self.rank, self.world_size = resolve_rank(rank, world_size)
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
        robin), each worker dropping its own share.
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
        stream_id = shard.worker_id
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
        chars = CharIdCache(self.max_characters_per_token)
        B, T = self.batch_size, self.unroll_steps
        # Per row, the (input token, target id) pairs not yet consumed; fwd and bwd cover the
        # same sentences.
        fwd_inputs: list[list[str]] = [[] for _ in range(B)]
        bwd_inputs: list[list[str]] = [[] for _ in range(B)]
        fwd_targets: list[list[int]] = [[] for _ in range(B)]
        bwd_targets: list[list[int]] = [[] for _ in range(B)]
        for step in range(n_steps):
            for row in range(B):
                while len(fwd_inputs[row]) < T:
                    words = next(sentences)
                    ids = self.vocab.encode([BOS_TOKEN, *words, EOS_TOKEN])
                    inputs, targets = sentence_pairs(words, ids)
                    fwd_inputs[row] += inputs
                    fwd_targets[row] += targets
                    inputs, targets = sentence_pairs(words, ids, reverse=True)
                    bwd_inputs[row] += inputs
                    bwd_targets[row] += targets
            if step >= skip:
                yield {
                    "fwd_chars": chars([r[:T] for r in fwd_inputs]),  # (B, T, C)
                    "fwd_targets": long_tensor([r[:T] for r in fwd_targets]),  # (B, T)
                    "bwd_chars": chars([r[:T] for r in bwd_inputs]),
                    "bwd_targets": long_tensor([r[:T] for r in bwd_targets]),
                    "stream_id": stream_id,
                    # The LSTM state is not in checkpoints: a resumed stream starts from zeros.
                    "reset": step == skip,
                }
            for rows in (fwd_inputs, bwd_inputs, fwd_targets, bwd_targets):
                for row in range(B):
                    del rows[row][:T]

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
                    f"than the {shard.count} shards (ranks x data-loader workers); "
                    "use fewer num_workers or a larger corpus"
                )


class ValidationSentences(IterableDataset):
    """Held-out batches of whole sentences, one per row, right-padded; ``reset`` always True.

    Forward rows are inputs ``<S> w1 .. wn`` with targets ``w1 .. wn </S>``; backward rows are
    inputs ``</S> wn .. w1`` with targets ``wn .. w1 <S>``; padding has all-zero chars and target
    -1. A sentence longer than ``max_sentence_tokens`` words is split into pieces of at most that
    many words, each scored as a sentence of its own (bounds the memory of one batch).

    Pieces are numbered in file order and piece i belongs to shard ``i % n_shards`` (see the module
    docstring). Every worker of every rank yields the same number of batches, topping up with
    all-padding batches (they count nothing), so all ranks run the same number of steps and every
    target is counted exactly once.

    Args:
        files: held-out corpus (path, glob, or list).
        vocab: maps target tokens to ids.
        batch_size: sentences per batch.
        max_characters_per_token: C.
        max_sentence_tokens: longest piece, in words.
        rank, world_size: this process's DDP rank; None reads them from ``torch.distributed``.
        num_workers: the DataLoader's ``num_workers`` (it sets ``len()``, the batches per rank).
    """

    def __init__(
        self,
        files: Files,
        vocab: Vocabulary,
        batch_size: int = 64,
        max_characters_per_token: int = MAX_CHARACTERS_PER_TOKEN,
        max_sentence_tokens: int = 400,
        rank: int | None = None,
        world_size: int | None = None,
        num_workers: int = 0,
    ):
        super().__init__()
        if batch_size < 1 or max_sentence_tokens < 1:
            raise ValueError(
                f"batch_size={batch_size}, max_sentence_tokens={max_sentence_tokens}: must be >= 1"
            )
        self.files = corpus_files(files)
        self.vocab = vocab
        self.batch_size = batch_size
        self.max_characters_per_token = max_characters_per_token
        self.max_sentence_tokens = max_sentence_tokens
        self.rank, self.world_size = resolve_rank(rank, world_size)
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
        chars = CharIdCache(self.max_characters_per_token)
        pieces = (p for i, p in enumerate(self._pieces()) if i % shard.count == shard.index)
        for _ in range(self.batches_per_worker(shard.num_workers)):
            batch = [p for _, p in zip(range(self.batch_size), pieces, strict=False)]
            yield self._batch(batch, chars, shard.worker_id)

    def _batch(self, sentences: list[list[str]], chars: CharIdCache, stream_id: int) -> Batch:
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
        return {
            "fwd_chars": chars(fwd_tokens),  # (B, T, C)
            "fwd_targets": fwd_targets,  # (B, T)
            "bwd_chars": chars(bwd_tokens),
            "bwd_targets": bwd_targets,
            "stream_id": stream_id,
            "reset": True,
        }


class HeldOutStreams(IterableDataset):
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
        max_characters_per_token: C.
        rank, world_size: this process's DDP rank; None reads them from ``torch.distributed``.
        num_workers: the DataLoader's ``num_workers`` (it sets ``len()``, the batches per rank).
    """

    def __init__(
        self,
        files: Files,
        vocab: Vocabulary,
        n_streams: int = 64,
        unroll_steps: int = 20,
        max_characters_per_token: int = MAX_CHARACTERS_PER_TOKEN,
        rank: int | None = None,
        world_size: int | None = None,
        num_workers: int = 0,
    ):
        super().__init__()
        if n_streams < 1 or unroll_steps < 1:
            raise ValueError(f"n_streams={n_streams}, unroll_steps={unroll_steps}: must be >= 1")
        self.files = corpus_files(files)
        self.vocab = vocab
        self.n_streams = n_streams
        self.unroll_steps = unroll_steps
        self.max_characters_per_token = max_characters_per_token
        self.rank, self.world_size = resolve_rank(rank, world_size)
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
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if num_workers != self.num_workers:
            raise ValueError(
                f"HeldOutStreams(num_workers={self.num_workers}) is read by {num_workers} "
                "data-loader workers; pass the DataLoader's num_workers"
            )
        streams = self.streams_of(worker_id, num_workers)
        row_of = {s: r for r, s in enumerate(streams)}
        B, T = max(1, len(streams)), self.unroll_steps
        chars = CharIdCache(self.max_characters_per_token)
        pending: list[list[list[str]]] = [[] for _ in range(B)]  # sentences read ahead, per row
        reader = enumerate(self._sentences())
        inputs = {d: [[] for _ in range(B)] for d in ("fwd", "bwd")}
        targets = {d: [[] for _ in range(B)] for d in ("fwd", "bwd")}

        def next_sentence(row: int) -> list[str] | None:
            while not pending[row]:
                i, tokens = next(reader, (None, None))
                if i is None:
                    return None
                if i % self.n_streams in row_of:
                    pending[row_of[i % self.n_streams]].append(tokens)
            return pending[row].pop(0)

        for step in range(self.n_batches):
            for row in range(len(streams)):
                while len(inputs["fwd"][row]) < T:
                    words = next_sentence(row)
                    if words is None:
                        break
                    ids = self.vocab.encode([BOS_TOKEN, *words, EOS_TOKEN])
                    for d in ("fwd", "bwd"):
                        x, y = sentence_pairs(words, ids, reverse=d == "bwd")
                        inputs[d][row] += x
                        targets[d][row] += y
            batch: Batch = {}
            for d in ("fwd", "bwd"):
                x = [(r[:T] + [""] * T)[:T] for r in inputs[d]]  # "" is padding
                y = [(r[:T] + [-1] * T)[:T] for r in targets[d]]
                batch[f"{d}_chars"] = chars(x)  # (B, T, C)
                batch[f"{d}_targets"] = torch.tensor(y, dtype=torch.long)  # (B, T)
                for r in range(B):
                    del inputs[d][r][:T]
                    del targets[d][r][:T]
            yield {**batch, "stream_id": worker_id, "reset": step == 0}
