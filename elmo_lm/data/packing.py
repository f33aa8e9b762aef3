"""Packing sentences into the (batch, unroll_steps) windows of stateful truncated BPTT, and the
tensors of a window.

This is the original ELMo trainer's packing (``bilm/data.py`` ``_get_batch``): each of the B rows
of a batch is a stream of (input, target) pairs. A sentence ``<S> w1 .. wn </S>`` gives its n + 1
pairs ``<S>->w1 .. wn-></S>`` and the next sentence follows at once, so ``</S>`` is never an input
and ``<S>`` never a target. Each window takes the next T (``unroll_steps``) pairs of every row, so
a sentence cut by the window continues in the same row of the next one. The backward LM reads the
same sentences, each one reversed (``</S> wn .. w1``), packed the same way. Rows pull their next
sentence when they need one, so memory is a few sentences per row whatever the size of the corpus.
"""

from __future__ import annotations

import array
import itertools
from collections.abc import Callable, Iterator, Sequence

import torch

from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.formats.characters import BOS_TOKEN, EOS_TOKEN, token_to_char_ids

Batch = dict[str, torch.Tensor | int | bool]

DIRECTIONS = ("fwd", "bwd")

Windows = dict[str, tuple[list[list[str]], list[list[int]]]]
"""Per direction, the (B, T) input tokens and target ids of one window; ``""`` and -1 pad."""


def sentence_pairs(words: list[str], ids: list[int], reverse: bool = False):
    """The (input tokens, target ids) pairs of one sentence in a stream: ``<S> w1 .. wn`` ->
    ``w1 .. wn </S>`` (reversed text for the backward LM); ``ids`` are those of
    ``<S> w1 .. wn </S>``."""
    sentence = [BOS_TOKEN, *words, EOS_TOKEN]
    if reverse:
        sentence, ids = sentence[::-1], ids[::-1]
    return sentence[:-1], ids[1:]


def packed_windows(
    vocab: Vocabulary,
    n_rows: int,
    unroll_steps: int,
    next_sentence: Callable[[int], list[str] | None],
) -> Iterator[Windows]:
    """Endless windows of ``n_rows`` packed sentence streams, ``unroll_steps`` pairs wide.

    Before each window, rows fill in order, row 0 first, each calling ``next_sentence(row)``
    until it holds a window's pairs; one shared source thus deals its sentences out as the
    original trainer does. ``None`` means the row has no more sentences: the rest of its windows
    is padding (input ``""``, target -1). Target ids are ``vocab``'s (unknown -> ``<UNK>``).
    """
    T = unroll_steps
    # Per direction and row, the (input token, target id) pairs not yet in a window; fwd and bwd
    # cover the same sentences.
    inputs: dict[str, list[list[str]]] = {d: [[] for _ in range(n_rows)] for d in DIRECTIONS}
    targets: dict[str, list[list[int]]] = {d: [[] for _ in range(n_rows)] for d in DIRECTIONS}
    while True:
        for row in range(n_rows):
            while len(inputs["fwd"][row]) < T:
                words = next_sentence(row)
                if words is None:
                    break
                ids = vocab.encode([BOS_TOKEN, *words, EOS_TOKEN])
                for d in DIRECTIONS:
                    x, y = sentence_pairs(words, ids, reverse=d == "bwd")
                    inputs[d][row] += x
                    targets[d][row] += y
        yield {
            d: ([_take(r, T, "") for r in inputs[d]], [_take(r, T, -1) for r in targets[d]])
            for d in DIRECTIONS
        }


def _take(row: list, n: int, pad) -> list:
    """Removes the first ``n`` items of ``row`` and returns them, padded to ``n`` with ``pad``."""
    window = row[:n]
    del row[:n]
    if len(window) < n:
        window += [pad] * (n - len(window))
    return window


def window_batch(windows: Windows, chars: CharIdCache, stream_id: int, reset: bool) -> Batch:
    """The tensors of one window: ``fwd_chars``/``bwd_chars`` (B, T, C) long char ids of the
    inputs, ``fwd_targets``/``bwd_targets`` (B, T) long target ids, and ``stream_id``, ``reset``
    as given."""
    batch: Batch = {}
    for d, (x, y) in windows.items():
        batch[f"{d}_chars"] = chars(x)  # (B, T, C)
        batch[f"{d}_targets"] = long_tensor(y)  # (B, T)
    return {**batch, "stream_id": stream_id, "reset": reset}


def long_tensor(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """(B, T) int64 tensor of B equally long lists of ints, through a flat ``array`` (faster
    than ``torch.tensor`` on nested lists)."""
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
