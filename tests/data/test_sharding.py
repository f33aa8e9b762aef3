"""Sharding: which sentences each worker of each rank reads, in which order, for how many steps."""

import random
from types import SimpleNamespace

import pytest

import elmo_lm.data.sharding as sharding
from elmo_lm.data.sharding import (
    Shard,
    current_shard,
    resolve_rank,
    shard_sentences,
    shuffled,
    split_steps,
    steps_per_epoch,
)
from tests.helpers import write_file

SENTENCES = [f"s{i} w{i % 3}" for i in range(9)]


@pytest.fixture
def corpus(tmp_path):
    return write_file(tmp_path / "train.txt", "\n".join(SENTENCES) + "\n")


def test_shards_are_disjoint_and_cover_the_corpus(corpus):
    n_shards = 2 * 3
    seen = []
    for index in range(n_shards):
        shard = Shard(index, n_shards, index % 3, 3)
        mine = [" ".join(s) for s in shard_sentences([str(corpus)], shard)]
        assert mine == SENTENCES[index::n_shards]  # sentence i belongs to shard i % n_shards
        seen += mine
    assert sorted(seen) == sorted(SENTENCES)


def test_sentences_are_numbered_across_files(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("a0\na1\na2\n", encoding="utf-8")
    b.write_text("b0\nb1\n", encoding="utf-8")
    shard = Shard(1, 2, 1, 2)
    assert list(shard_sentences([str(a), str(b)], shard)) == [["a1"], ["b0"]]


def test_split_steps_sums_to_total():
    for total in range(12):
        assert sum(split_steps(total, 5, w) for w in range(5)) == total
    assert [split_steps(7, 3, w) for w in range(3)] == [3, 2, 2]
    assert steps_per_epoch(5, 128, 20) == 1  # never an empty epoch
    assert steps_per_epoch(1000, 4, 5) == 50 and steps_per_epoch(1000, 4, 5, world_size=2) == 25


def test_resolve_rank_takes_what_is_given_else_a_single_process():
    assert resolve_rank(None, None) == (0, 1)  # no process group
    assert resolve_rank(1, 3) == (1, 3)
    with pytest.raises(ValueError, match=r"rank=2 must lie in \[0, world_size=2\)"):
        resolve_rank(2, 2)


def test_current_shard_of_a_data_loader_worker(monkeypatch):
    assert current_shard(1, 2) == Shard(1, 2, 0, 1)  # no workers: the main process
    info = SimpleNamespace(id=1, num_workers=3)
    monkeypatch.setattr(sharding, "get_worker_info", lambda: info)
    assert current_shard(1, 2) == Shard(1 * 3 + 1, 2 * 3, 1, 3)


def test_shuffled_is_a_seeded_permutation_within_the_buffer():
    items = [[f"s{i}", "w"] for i in range(100)]
    assert list(shuffled(iter(items), 0, random.Random(0))) == items
    assert list(shuffled(iter(items), 1, random.Random(0))) == items
    first = list(shuffled(iter(items), 10, random.Random(0)))
    assert sorted(first) == sorted(items) and first != items
    assert list(shuffled(iter(items), 10, random.Random(0))) == first
    assert list(shuffled(iter(items), 10, random.Random(1))) != first
    assert all(int(s[0][1:]) <= i + 10 for i, s in enumerate(first))  # ahead by at most 10
