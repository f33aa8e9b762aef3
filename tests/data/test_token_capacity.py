"""The loader's distinct tokens of a training batch: capacities from a fixed ladder, few shapes,
and indices that give back the batch's char ids exactly."""

import itertools

import pytest
import torch

from elmo_lm.data.packing import (
    CharIdCache,
    char_caps,
    distinct_tokens,
    packed_windows,
    round_up,
    token_caps,
    window_batch,
)
from elmo_lm.data.streams import TrainStream
from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.formats.characters import PADDING_CHAR
from tests.helpers import ROOT

SAMPLE = ROOT / "data" / "sample" / "train.txt"
PAD_ID = PADDING_CHAR + 1


def full_width(batch, max_chars: int) -> torch.Tensor:
    """(2, B, T, max_chars): ``tokens[token_index]`` with the cut columns put back as padding
    characters (all-zero rows stay zero)."""
    cut = batch["tokens"][batch["token_index"]]  # (2, B, T, C_cap)
    full = torch.full((*cut.shape[:-1], max_chars), PAD_ID, dtype=torch.long)
    full[..., : cut.shape[-1]] = cut
    full[(cut == 0).all(-1)] = 0
    return full


def check(batch, max_chars: int = 50) -> None:
    chars = torch.stack([batch["fwd_chars"], batch["bwd_chars"]])  # (2, B, T, C)
    # the distinct rows, told apart by a random linear hash (the reconstruction below is exact)
    weights = torch.randint(-(2**62), 2**62, (chars.shape[-1],), generator=torch.Generator())
    n_distinct = len(torch.unique((chars * weights).sum(-1)))
    longest = int(((chars != PAD_ID) & (chars != 0)).sum(-1).max())
    tokens = batch["tokens"]
    k_cap, c_cap = tokens.shape
    assert tokens.dtype == batch["token_index"].dtype == torch.long
    assert batch["token_index"].shape == chars.shape[:-1]
    assert n_distinct <= k_cap <= chars[..., 0].numel()
    assert longest <= c_cap <= max_chars
    assert not tokens[n_distinct:].any()  # rows past the distinct count are zero
    assert torch.equal(full_width(batch, max_chars), chars)


@pytest.fixture(scope="module")
def sample_vocab():
    return Vocabulary.build([str(SAMPLE)], 1, None)


def test_sample_corpus_batches_take_few_shapes(sample_vocab):
    stream = TrainStream(
        str(SAMPLE), sample_vocab, 10**6, batch_size=32, unroll_steps=20, shuffle_buffer=100
    )
    shapes = set()
    for batch in itertools.islice(iter(stream), 100):
        check(batch)
        shapes.add(tuple(batch["tokens"].shape))
    print("shapes of 100 batches:", sorted(shapes))
    assert len(shapes) <= 4


def test_long_tokens_unicode_and_padding():
    """Tokens past max_characters_per_token are cut at it (C_cap = 50); padding rows ("" at the
    end of a stream) give back all-zero rows; every token of both directions is found."""
    vocab = Vocabulary(["<S>", "</S>", "<UNK>", "a"])
    source = iter([["a", "x" * 70, "héllo"], ["bb", "a"], ["ccc"]])
    window = next(packed_windows(vocab, 3, 5, lambda row: next(source, None)))
    batch = window_batch(window, CharIdCache(50), 0, reset=True, distinct=True)
    check(batch)
    assert batch["tokens"].shape[1] == 50
    short = window_batch(
        next(packed_windows(vocab, 2, 3, lambda row: ["a", "b"])), CharIdCache(50), 0, True, True
    )
    check(short)
    assert short["tokens"].shape == (12, 8)  # 2 * B * T = 12 bounds K_cap; 8 is the least C_cap


def test_narrower_ids_cap_at_their_width():
    vocab = Vocabulary(["<S>", "</S>", "<UNK>"])
    window = next(packed_windows(vocab, 4, 6, lambda row: ["abcdefghijklmnopqrstuvwxyz", "q"]))
    batch = window_batch(window, CharIdCache(20), 0, reset=False, distinct=True)
    check(batch, max_chars=20)
    assert batch["tokens"].shape[1] == 20


def test_held_out_batches_are_unchanged():
    vocab = Vocabulary(["<S>", "</S>", "<UNK>", "a"])
    window = next(packed_windows(vocab, 2, 3, lambda row: ["a"]))
    batch = window_batch(window, CharIdCache(50), 0, reset=True)
    assert "tokens" not in batch and "token_index" not in batch


def test_ladders():
    caps = token_caps(2 * 128 * 20)
    assert caps == sorted(caps) and caps[0] == 16 and caps[-1] == 5120
    assert all(b / a <= 1.25 for a, b in zip(caps, caps[1:]))
    assert all(c % 8 == 0 for c in caps if c >= 32)
    assert [round_up(n, caps) for n in (1, 16, 17, 217, 257, 5000, 5120)] == [
        16,
        16,
        20,
        224,
        320,
        5120,
        5120,
    ]
    assert char_caps(50) == [8, 12, 16, 24, 32, 50]
    assert char_caps(20) == [8, 12, 16, 20]
    rows = torch.tensor([[[0, 1], [1, 2]], [[2, 1], [1, 0]]])  # (2, B, T) of a 3-row table
    table = torch.zeros(3, 50, dtype=torch.int16)
    table[1:, :6] = 7
    table[1:, 6:] = PAD_ID
    out = distinct_tokens(rows, table)
    assert out["tokens"].shape == (8, 8)  # K = 3 -> 2 * B * T = 8; 6 characters -> 8
    assert torch.equal(out["tokens"][out["token_index"]], table[rows][..., :8].long())
