"""Training streams (packing, windows, backward order, OOV, steps per rank), held-out streams and
validation batches."""

import copy
import itertools
import socket
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

import elmo_lm.data.sharding as sharding
from elmo_lm.data.corpus import CorpusError, count_corpus
from elmo_lm.data.sharding import Shard, shard_sentences, steps_per_epoch
from elmo_lm.data.streams import HeldOutStreams, TrainStream, ValidationSentences
from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.formats.characters import token_to_char_ids
from tests.helpers import write_file

SENTENCES = [
    "the cat sat",
    "a dog ran home quickly today",
    "x",
    "birds sing",
    "the river flooded its bank after the storm",
    "she smiled",
    "one two three four",
    "zebra",
    "the end of it all",
]


@pytest.fixture
def corpus(tmp_path):
    return write_file(tmp_path / "train.txt", "\n".join(SENTENCES) + "\n")


def decoder(tokens):
    """Maps a row of char ids back to its token ("" for padding)."""
    table = {token_to_char_ids(t): t for t in tokens}
    table[(0,) * 50] = ""
    return lambda chars: [table[tuple(row.tolist())] for row in chars]


def all_tokens(sentences):
    return {"<S>", "</S>"} | {t for s in sentences for t in s.split()}


def as_worker(monkeypatch, worker_id, num_workers):
    info = SimpleNamespace(id=worker_id, num_workers=num_workers)
    monkeypatch.setattr(sharding, "get_worker_info", lambda: info)


def row_streams(batches, key, decode):
    """Per row, the tokens its windows read: the inputs of each batch then the last target."""
    rows = [[] for _ in range(batches[0][key + "_chars"].shape[0])]
    for b in batches:
        for r, chars in enumerate(b[key + "_chars"]):
            rows[r] += decode(chars)
    return rows


def test_packing_is_the_originals(corpus):
    """The pairs bilm-tf's ``_get_batch`` makes, written out by hand from its rules: a sentence
    of n words gives n + 1 pairs, the next sentence starts when only its </S> is left (</S> is
    never an input, <S> never a target), rows fill in order, each pulling the next sentence."""
    vocab = Vocabulary.build(corpus)
    stats = vocab.stats
    ds = TrainStream(corpus, vocab, stats.n_tokens_with_boundaries, batch_size=2, unroll_steps=3)
    batches = list(ds)
    assert len(batches) == len(ds) == stats.n_tokens_with_boundaries // 6
    for b in batches:
        assert b["fwd_chars"].shape == b["bwd_chars"].shape == (2, 3, 50)
        assert b["fwd_chars"].dtype == b["fwd_targets"].dtype == torch.long
        assert b["fwd_targets"].shape == (2, 3) and b["stream_id"] == 0
    assert [b["reset"] for b in batches] == [True] + [False] * (len(batches) - 1)
    decode = decoder(all_tokens(SENTENCES))
    expected = {  # per batch: (row 0 inputs, row 0 targets, row 1 inputs, row 1 targets)
        "fwd": [
            ("<S> the cat", "the cat sat", "<S> a dog", "a dog ran"),
            ("sat <S> x", "</S> x </S>", "ran home quickly", "home quickly today"),
            ("<S> birds sing", "birds sing </S>", "today <S> the", "</S> the river"),
        ],
        "bwd": [
            ("</S> sat cat", "sat cat the", "</S> today quickly", "today quickly home"),
            ("the </S> x", "<S> x <S>", "home ran dog", "ran dog a"),
            ("</S> sing birds", "sing birds <S>", "a </S> storm", "<S> storm the"),
        ],
    }
    for direction, windows in expected.items():
        for b, (in0, out0, in1, out1) in zip(batches, windows):
            for row, (inputs, targets) in enumerate([(in0, out0), (in1, out1)]):
                assert decode(b[direction + "_chars"][row]) == inputs.split()
                assert b[direction + "_targets"][row].tolist() == vocab.encode(targets.split())
    for b in batches:  # anywhere in the epoch
        for direction in ("fwd", "bwd"):
            inputs = [t for row in b[direction + "_chars"] for t in decode(row)]
            assert "</S>" not in inputs if direction == "fwd" else "<S>" not in inputs
            bos = vocab.encode(["<S>" if direction == "fwd" else "</S>"])[0]
            assert bos not in b[direction + "_targets"].flatten().tolist()


def test_sentence_order_is_shuffled_per_epoch_and_seed_with_bounded_memory(tmp_path):
    path = tmp_path / "train.txt"
    lines = [f"s{i} w" for i in range(300)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    vocab = Vocabulary.build(path)

    def order(seed, epoch, buffer):
        ds = TrainStream(path, vocab, 10_000, 1, 3, seed=seed, shuffle_buffer=buffer)
        ds.set_epoch(epoch)
        sentences = ds._endless(ds.epoch_files(epoch), Shard(0, 1, 0, 1), epoch)
        return [" ".join(next(sentences)) for _ in range(300)]

    assert order(0, 0, 0) == lines  # no buffer: file order
    first = order(0, 0, 50)
    assert sorted(first) == sorted(lines) and first != lines  # a permutation of one pass
    assert order(0, 0, 50) == first  # deterministic
    assert order(0, 1, 50) != first and order(1, 0, 50) != first  # per epoch and seed
    # A sentence moves ahead by at most the buffer: memory is the buffer, not the corpus.
    assert all(int(s.split()[0][1:]) <= i + 50 for i, s in enumerate(first))


def test_backward_stream_reverses_each_sentence(corpus):
    vocab = Vocabulary.build(corpus)
    ds = TrainStream(corpus, vocab, 10_000, batch_size=3, unroll_steps=4)
    batches = list(ds)[:5]
    decode = decoder(all_tokens(SENTENCES))
    for fwd, bwd in zip(row_streams(batches, "fwd", decode), row_streams(batches, "bwd", decode)):
        # Both directions cover the same sentences; split the forward stream at its </S>.
        sentence, expected = [], []
        for token in fwd:
            sentence.append(token)
            if token == "</S>":
                expected += sentence[::-1]
                sentence = []
        assert bwd[: len(expected)] == expected
        assert bwd[0] == "</S>" and fwd[0] == "<S>"


def test_unknown_targets_become_unk_but_inputs_keep_their_characters(corpus):
    vocab = Vocabulary.build(corpus, max_size=4)  # <S> </S> <UNK> the
    ds = TrainStream(corpus, vocab, 10_000, batch_size=1, unroll_steps=4)
    first = next(iter(ds))
    decode = decoder(all_tokens(SENTENCES))
    assert decode(first["fwd_chars"][0]) == ["<S>", "the", "cat", "sat"]
    assert first["fwd_targets"][0].tolist() == [vocab.encode(["the"])[0], 2, 2, 1]


def test_file_order_is_deterministic_and_shuffled_per_epoch(tmp_path):
    files = []
    for i in range(6):
        files.append(tmp_path / f"{i}.txt")
        files[-1].write_text(f"file{i} a\n", encoding="utf-8")
    vocab = Vocabulary.build(files)
    make = lambda: TrainStream(files, vocab, 1000, 1, 2, seed=3, shuffle_files=True)  # noqa: E731
    a, b = make(), make()
    assert a.epoch_files(0) == b.epoch_files(0)
    assert a.epoch_files(0) != a.epoch_files(1)
    assert torch.equal(next(iter(a))["fwd_chars"], next(iter(b))["fwd_chars"])
    assert a.epoch == 1  # each iteration starts the next epoch
    assert sorted(a.epoch_files(5)) == [str(f) for f in files]


@pytest.mark.parametrize(("world_size", "num_workers"), [(1, 1), (2, 1), (2, 3), (3, 2)])
def test_every_rank_runs_the_same_number_of_steps(corpus, monkeypatch, world_size, num_workers):
    vocab = Vocabulary.build(corpus)
    n = vocab.stats.n_tokens_with_boundaries
    expected = steps_per_epoch(n, 1, 2, world_size)
    read = []  # sentences fed into the streams, by shard, first pass only
    for rank in range(world_size):
        steps = 0
        for worker in range(num_workers):
            as_worker(monkeypatch, worker, num_workers)
            ds = TrainStream(corpus, vocab, n, 1, 2, rank=rank, world_size=world_size)
            batches = list(ds)
            assert all(b["stream_id"] == worker for b in batches)
            steps += len(batches)
            index = rank * num_workers + worker
            shard = Shard(index, world_size * num_workers, worker, num_workers)
            read.append([" ".join(s) for s in shard_sentences(ds.files, shard)])
        assert steps == expected  # uneven shards (9 sentences of unequal length) wrap around
    assert sorted(s for shard in read for s in shard) == sorted(SENTENCES)


def test_a_shard_without_sentences_is_an_error_not_a_hang(tmp_path, monkeypatch):
    path = tmp_path / "t.txt"
    path.write_text("a b\n", encoding="utf-8")
    vocab = Vocabulary.build(path)
    as_worker(monkeypatch, 1, 2)
    with pytest.raises(CorpusError, match="fewer sentences than the 2 shards"):
        list(TrainStream(path, vocab, 1000, 1, 2))


def decode_targets(vocab, targets):
    return [vocab.tokens[i] for i in targets.tolist() if i >= 0]


def test_validation_rows_are_whole_padded_sentences(corpus):
    vocab = Vocabulary.build(corpus)
    ds = ValidationSentences(corpus, vocab, batch_size=4)
    batches = list(ds)
    assert len(batches) == len(ds) == 3
    decode = decoder(all_tokens(SENTENCES))
    first = batches[0]
    assert first["reset"] is True and first["fwd_chars"].shape[:2] == (
        4,
        7,
    )  # longest: 6 words + <S>
    words = SENTENCES[0].split()
    assert decode(first["fwd_chars"][0]) == ["<S>", *words] + [""] * 3
    assert decode(first["bwd_chars"][0]) == ["</S>", *words[::-1]] + [""] * 3
    assert decode_targets(vocab, first["fwd_targets"][0]) == [*words, "</S>"]
    assert decode_targets(vocab, first["bwd_targets"][0]) == [*words[::-1], "<S>"]
    assert first["fwd_targets"][0, 4:].tolist() == [-1] * 3


@pytest.mark.parametrize(("world_size", "num_workers"), [(1, 1), (2, 1), (2, 2), (3, 3)])
def test_validation_counts_every_target_once_across_shards(
    corpus, monkeypatch, world_size, num_workers
):
    vocab = Vocabulary.build(corpus)
    fwd, bwd, per_rank = Counter(), Counter(), []
    for rank in range(world_size):
        n_batches = 0
        for worker in range(num_workers):
            as_worker(monkeypatch, worker, num_workers)
            ds = ValidationSentences(
                corpus, vocab, 2, rank=rank, world_size=world_size, num_workers=num_workers
            )
            for b in ds:
                n_batches += 1
                fwd.update(decode_targets(vocab, b["fwd_targets"].flatten()))
                bwd.update(decode_targets(vocab, b["bwd_targets"].flatten()))
        assert n_batches == len(ds)
        per_rank.append(n_batches)
    assert len(set(per_rank)) == 1  # ranks with fewer sentences top up with padding batches
    expected = Counter(t for s in SENTENCES for t in s.split())
    assert fwd == expected + Counter({"</S>": len(SENTENCES)})
    assert bwd == expected + Counter({"<S>": len(SENTENCES)})


def test_validation_splits_long_sentences_into_pieces(corpus):
    vocab = Vocabulary.build(corpus)
    ds = ValidationSentences(corpus, vocab, batch_size=100, max_sentence_tokens=3)
    (batch,) = list(ds)
    assert batch["fwd_chars"].shape[1] == 4  # at most 3 words + <S>
    stats = count_corpus(corpus)
    assert ds.n_pieces == sum(-(-len(s.split()) // 3) for s in SENTENCES)
    assert int((batch["fwd_targets"] >= 0).sum()) == stats.n_tokens + ds.n_pieces


def test_validation_checks_the_worker_count(corpus, monkeypatch):
    vocab = Vocabulary.build(corpus)
    as_worker(monkeypatch, 0, 2)
    with pytest.raises(ValueError, match="pass the DataLoader's num_workers"):
        list(ValidationSentences(corpus, vocab, 2, num_workers=0))


def _ddp_worker(rank, world_size, corpus, port, out):
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    vocab = Vocabulary.build(corpus)
    n = vocab.stats.n_tokens_with_boundaries
    train = TrainStream(corpus, vocab, n, batch_size=1, unroll_steps=2)  # rank from the group
    valid = ValidationSentences(corpus, vocab, batch_size=2)
    steps = torch.tensor([len(list(train)), len(list(valid)), train.rank])
    gathered = [torch.zeros_like(steps) for _ in range(world_size)]
    torch.distributed.all_gather(gathered, steps)
    if rank == 0:
        torch.save(torch.stack(gathered), out)
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ranks_read_from_torch_distributed_and_stay_in_step(corpus, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "steps.pt"
    torch.multiprocessing.spawn(_ddp_worker, args=(2, str(corpus), port, str(out)), nprocs=2)
    steps = torch.load(out)  # (rank, [train steps, valid batches, rank seen])
    assert steps[:, 2].tolist() == [0, 1]
    assert steps[0, :2].tolist() == steps[1, :2].tolist()
    assert steps[0, 0] == steps_per_epoch(count_corpus(corpus).n_tokens_with_boundaries, 1, 2, 2)


def test_held_out_streams_carry_sentences_and_score_every_target(corpus):
    vocab = Vocabulary.build(corpus)
    ds = HeldOutStreams(corpus, vocab, n_streams=2, unroll_steps=4, rank=0, world_size=1)
    batches = list(ds)
    # Stream 0: sentences 0, 2, 4, 6, 8; stream 1: sentences 1, 3, 5, 7 (n + 1 pairs each).
    lengths = [sum(len(SENTENCES[i].split()) + 1 for i in range(s, 9, 2)) for s in (0, 1)]
    assert ds.stream_lengths == lengths and len(batches) == len(ds) == -(-max(lengths) // 4)
    assert [b["reset"] for b in batches] == [True] + [False] * (len(batches) - 1)
    decode = decoder(all_tokens(SENTENCES))
    fwd = row_streams(batches, "fwd", decode)
    assert fwd[0][:9] == "<S> the cat sat <S> x <S> the river".split()
    bwd = row_streams(batches, "bwd", decode)
    assert bwd[1][:9] == "</S> today quickly home ran dog a </S> sing".split()
    for direction, first in (("fwd", "the"), ("bwd", "sat")):
        targets = torch.cat([b[direction + "_targets"] for b in batches], dim=1)
        assert targets[0, 0] == vocab.encode([first])[0]
        for row, n in enumerate(lengths):
            assert (targets[row, :n] >= 0).all() and (targets[row, n:] == -1).all()
            assert decode(torch.cat([b[direction + "_chars"] for b in batches], 1)[row])[n:] == [
                ""
            ] * (targets.shape[1] - n)


@pytest.mark.parametrize("world_size,num_workers", [(1, 1), (2, 1), (2, 2), (3, 2)])
def test_held_out_streams_split_over_ranks_and_workers(
    corpus, monkeypatch, world_size, num_workers
):
    """Every stream is read whole by exactly one worker of one rank, all of them in step."""
    vocab = Vocabulary.build(corpus)
    whole = list(HeldOutStreams(corpus, vocab, n_streams=4, unroll_steps=3, rank=0, world_size=1))
    expected = torch.cat([b["fwd_targets"] for b in whole], dim=1)  # (4 streams, time)
    got, counts = {}, set()
    for rank in range(world_size):
        ds = HeldOutStreams(
            corpus, vocab, 4, 3, rank=rank, world_size=world_size, num_workers=num_workers
        )
        for worker in range(num_workers):
            as_worker(monkeypatch, worker, num_workers)
            batches = list(ds)
            counts.add(len(batches))
            targets = torch.cat([b["fwd_targets"] for b in batches], dim=1)
            for row, s in enumerate(ds.streams_of(worker, num_workers)):
                got[s] = targets[row]
    assert len(counts) == 1 and sorted(got) == [0, 1, 2, 3]
    for s in range(4):
        assert torch.equal(got[s], expected[s])


def test_training_and_held_out_streams_pack_alike(corpus):
    """One stream read both ways gives the same windows until the held-out one runs out
    (then padded) and the training one starts the corpus again."""
    vocab = Vocabulary.build(corpus, max_size=10)  # unknown targets too
    held_out = list(
        HeldOutStreams(corpus, vocab, n_streams=1, unroll_steps=4, rank=0, world_size=1)
    )
    train = TrainStream(corpus, vocab, 10_000, batch_size=1, unroll_steps=4)
    train_batches = list(itertools.islice(iter(train), len(held_out)))
    n = HeldOutStreams(corpus, vocab, n_streams=1, unroll_steps=4).stream_lengths[0]
    assert n == sum(len(s.split()) + 1 for s in SENTENCES) and n % 4 != 0
    for k, (h, t) in enumerate(zip(held_out, train_batches, strict=True)):
        assert list(h) == list(t) and h["reset"] == t["reset"] == (k == 0)
        width = min(4, n - 4 * k)  # the held-out stream's pairs in this window
        for key in ("fwd_chars", "bwd_chars", "fwd_targets", "bwd_targets"):
            assert h[key].dtype == t[key].dtype and h[key].shape == t[key].shape
            assert torch.equal(h[key][:, :width], t[key][:, :width]), (k, key)
        assert (h["fwd_targets"][:, width:] == -1).all() and (h["fwd_chars"][:, width:] == 0).all()


@pytest.mark.parametrize("num_workers", [1, 2, 3])
def test_a_resumed_stream_goes_on_with_the_stream_ids_and_without_a_reset(
    corpus, monkeypatch, num_workers
):
    """Resumed after k batches, the loader's batches are the uninterrupted run's from k on,
    each with the ``stream_id`` of the stream it continues, and a ``reset`` only where a worker's
    stream starts: the module carries on the state the checkpoint saved for each stream."""
    vocab = Vocabulary.build(corpus)
    n = vocab.stats.n_tokens_with_boundaries

    def loader(ds):  # the DataLoader's round robin over its workers' copies, from worker 0
        per_worker = []
        for worker in range(num_workers):
            as_worker(monkeypatch, worker, num_workers)
            per_worker.append(list(iter(copy.deepcopy(ds))))
        merged = itertools.zip_longest(*per_worker)
        return [b for batches in merged for b in batches if b is not None]

    whole = loader(TrainStream(corpus, vocab, n, batch_size=2, unroll_steps=2))
    assert [b["stream_id"] for b in whole] == [j % num_workers for j in range(len(whole))]
    assert [b["reset"] for b in whole] == [j < num_workers for j in range(len(whole))]
    for k in (1, 4, 5):
        ds = TrainStream(corpus, vocab, n, batch_size=2, unroll_steps=2)
        ds.resume(0, k)
        resumed = loader(ds)
        assert len(resumed) == len(whole) - k
        for a, b in zip(resumed, whole[k:], strict=True):
            assert a["stream_id"] == b["stream_id"] and a["reset"] is b["reset"]
            assert torch.equal(a["fwd_targets"], b["fwd_targets"])
