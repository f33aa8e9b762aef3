"""The one packing loop of the training and held-out streams, and the tensors of a window."""

import itertools

import pytest
import torch

from elmo_lm.data.packing import (
    CharIdCache,
    long_tensor,
    packed_windows,
    sentence_pairs,
    window_batch,
)
from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.formats.characters import token_to_char_ids

VOCAB = Vocabulary(["<S>", "</S>", "<UNK>", "a", "b", "c", "d", "e"])


def test_sentence_pairs_forward_and_backward():
    ids = VOCAB.encode(["<S>", "a", "b", "</S>"])
    assert sentence_pairs(["a", "b"], ids) == (["<S>", "a", "b"], VOCAB.encode(["a", "b", "</S>"]))
    assert sentence_pairs(["a", "b"], ids, reverse=True) == (
        ["</S>", "b", "a"],
        VOCAB.encode(["b", "a", "<S>"]),
    )


def windows_as_text(window):
    """Per direction, each row as "inputs / targets", "_" for padding."""
    text = {}
    for d, (inputs, targets) in window.items():
        text[d] = [
            " ".join(t or "_" for t in x)
            + " / "
            + " ".join(VOCAB.tokens[i] if i >= 0 else "_" for i in y)
            for x, y in zip(inputs, targets, strict=True)
        ]
    return text


def test_a_shared_source_is_dealt_out_row_by_row_then_padded():
    """The windows written out by hand from the original's rules (n + 1 pairs per sentence,
    rows fill in order, each pulling the next sentence); "zz" is unknown: its target is <UNK>."""
    source = iter([["a", "b"], ["c"], ["d", "zz", "e"]])
    windows = packed_windows(VOCAB, 2, 3, lambda row: next(source, None))
    got = [windows_as_text(w) for w in itertools.islice(windows, 3)]
    assert got == [
        {
            "fwd": ["<S> a b / a b </S>", "<S> c <S> / c </S> d"],
            "bwd": ["</S> b a / b a <S>", "</S> c </S> / c <S> e"],
        },
        {
            "fwd": ["_ _ _ / _ _ _", "d zz e / <UNK> e </S>"],
            "bwd": ["_ _ _ / _ _ _", "e zz d / <UNK> d <S>"],
        },
        {
            "fwd": ["_ _ _ / _ _ _", "_ _ _ / _ _ _"],
            "bwd": ["_ _ _ / _ _ _", "_ _ _ / _ _ _"],
        },
    ]


def test_rows_with_sources_of_their_own():
    sources = {0: iter([["a"], ["b", "c"]]), 1: iter([["d"]])}
    calls = []

    def next_sentence(row):
        calls.append(row)
        return next(sources[row], None)

    windows = packed_windows(VOCAB, 2, 4, next_sentence)
    first = windows_as_text(next(windows))
    assert first["fwd"] == ["<S> a <S> b / a </S> b c", "<S> d _ _ / d </S> _ _"]
    assert first["bwd"] == ["</S> a </S> c / a <S> c b", "</S> d _ _ / d <S> _ _"]
    assert calls == [0, 0, 1, 1]  # a row pulls only while it lacks a window's pairs
    second = windows_as_text(next(windows))
    assert second["fwd"] == ["c _ _ _ / </S> _ _ _", "_ _ _ _ / _ _ _ _"]
    assert second["bwd"] == ["b _ _ _ / <S> _ _ _", "_ _ _ _ / _ _ _ _"]


def test_window_batch_tensors():
    source = iter([["a", "b", "c"], ["zz"]])
    window = next(packed_windows(VOCAB, 2, 3, lambda row: next(source, None)))
    batch = window_batch(window, CharIdCache(50), stream_id=3, reset=True)
    assert list(batch) == [
        "fwd_chars",
        "bwd_chars",
        "fwd_targets",
        "bwd_targets",
        "stream_id",
        "reset",
    ]
    assert batch["stream_id"] == 3 and batch["reset"] is True
    for d in ("fwd", "bwd"):
        assert batch[f"{d}_chars"].shape == (2, 3, 50) and batch[f"{d}_chars"].dtype == torch.long
        assert batch[f"{d}_targets"].dtype == torch.long
    assert batch["fwd_targets"].tolist() == [VOCAB.encode(["a", "b", "c"]), [2, 1, -1]]
    assert batch["fwd_chars"][1, 1].tolist() == list(token_to_char_ids("zz"))
    assert (batch["fwd_chars"][1, 2] == 0).all()  # padding: all-zero chars


def test_a_word_input_window_carries_ids_and_no_char_ids():
    source = iter([["a", "b", "c"], ["zz"]])
    window = next(packed_windows(VOCAB, 2, 3, lambda row: next(source, None)))
    batch = window_batch(window, None, stream_id=0, reset=False, distinct=True, vocab=VOCAB)
    assert sorted(batch) == sorted(
        ["fwd_targets", "bwd_targets", "fwd_ids", "bwd_ids", "stream_id", "reset"]
    )
    with_chars = window_batch(window, CharIdCache(50), 0, False, distinct=True, vocab=VOCAB)
    for key in ("fwd_ids", "bwd_ids", "fwd_targets", "bwd_targets"):
        assert torch.equal(batch[key], with_chars[key])
    assert batch["fwd_ids"].tolist() == [
        VOCAB.encode(["<S>", "a", "b"]),
        [*VOCAB.encode(["<S>", "zz"]), -1],  # zz: <UNK>, then padding
    ]
    with pytest.raises(ValueError, match="needs the vocabulary"):
        window_batch(window, None, stream_id=0, reset=False)


def test_long_tensor_matches_torch_tensor():
    rows = [[1, -1, 2**40], [0, 5, 6]]
    got = long_tensor(rows)
    assert got.dtype == torch.long and torch.equal(got, torch.tensor(rows))
    assert long_tensor([]).shape == (0, 0) and long_tensor([[], []]).shape == (2, 0)
    with pytest.raises(ValueError, match="differ in length"):
        long_tensor([[1, 2], [3]])


def test_char_id_cache_gives_the_char_ids_and_bounds_its_memory():
    cache = CharIdCache(50, max_entries=8)
    for tokens in ([["a", "bb", ""], ["a", "ccc", "bb"]], [[f"t{i}" for i in range(6)]]):
        expected = [[token_to_char_ids(t) if t else (0,) * 50 for t in row] for row in tokens]
        assert cache(tokens).tolist() == [[list(c) for c in row] for row in expected]
    assert len(cache._index) <= 8
