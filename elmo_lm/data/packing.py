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
from elmo_lm.formats.characters import BOS_TOKEN, EOS_TOKEN, PADDING_CHAR, token_to_char_ids

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


def input_ids(vocab: Vocabulary, tokens: Sequence[str]) -> list[int]:
    """Vocabulary ids of input tokens (unknown -> ``<UNK>``), -1 for the padding token ``""``."""
    return [vocab.token_to_id(t) if t else -1 for t in tokens]


def _take(row: list, n: int, pad) -> list:
    """Removes the first ``n`` items of ``row`` and returns them, padded to ``n`` with ``pad``."""
    window = row[:n]
    del row[:n]
    if len(window) < n:
        window += [pad] * (n - len(window))
    return window


def window_batch(
    windows: Windows,
    chars: CharIdCache | None,
    stream_id: int,
    reset: bool,
    distinct: bool = False,
    vocab: Vocabulary | None = None,
) -> Batch:
    """The tensors of one window: ``fwd_chars``/``bwd_chars`` (B, T, C) long char ids of the
    inputs, ``fwd_targets``/``bwd_targets`` (B, T) long target ids, and ``stream_id``, ``reset``
    as given; with ``distinct``, also ``tokens`` and ``token_index`` (``distinct_tokens``); with
    a ``vocab``, also ``fwd_ids``/``bwd_ids`` (B, T) long vocabulary ids of the inputs, -1 where
    there is none (what a word-input LM reads). ``chars`` None (word inputs, which read no
    characters): ids and targets only, no char ids."""
    batch: Batch = {}
    if chars is not None:
        inputs = [row for x, _ in windows.values() for row in x]  # both directions in one lookup
        rows = chars.rows(inputs).view(len(windows), -1, len(inputs[0]))  # (2, B, T)
        for i, d in enumerate(windows):
            batch[f"{d}_chars"] = chars.table[rows[i]].long()  # (B, T, C)
        if distinct:
            batch.update(distinct_tokens(rows, chars.table))
    elif vocab is None:
        raise ValueError("a window without char ids needs the vocabulary (its inputs' ids)")
    for d, (x, y) in windows.items():
        batch[f"{d}_targets"] = long_tensor(y)  # (B, T)
        if vocab is not None:
            batch[f"{d}_ids"] = long_tensor([input_ids(vocab, row) for row in x])
    return {**batch, "stream_id": stream_id, "reset": reset}


# Capacities of ``distinct_tokens``: its shapes are drawn from these, so that a run sees a
# handful of them and the compiled graphs (and CUDA graphs) of a step are reused.
TOKEN_STEPS = (4, 5, 6, 7)
"""K_cap is ``m * 2**k`` (m in ``TOKEN_STEPS``, at least 16): each step at most 25% above the
one below, multiples of 8 from 32 on. The distinct tokens of a batch of real text vary by a few
percent from batch to batch (B = 32, T = 20 of the sample corpus: 217 to 274 of 1280), so a run
takes two or three values; the zero rows add at most a quarter to the char CNN's work."""
CHAR_CAPS = (8, 12, 16, 24, 32, 50)
"""C_cap, in characters with the begin and end markers: the longest of a batch's tokens rounded
up to one of these (and at most ``max_characters_per_token``). The longest token of a batch of
thousands moves little (the sample corpus: 10 to 12), but a long word now and then reaches the
cut at 50; coarse steps keep the values few, and the windows past it (the char CNN's
convolutions, a minor share of its work at the published shapes, where the highways dominate)
cost at most 1.6 times the windows needed."""


def distinct_tokens(rows: torch.Tensor, table: torch.Tensor) -> Batch:
    """The distinct tokens of a window's inputs, both directions, at capacities of a fixed ladder.

    Args:
        rows: (2, B, T) long rows of ``table`` (``CharIdCache.rows``: one per token string).
        table: (entries, max_chars) the cache's char ids.

    Returns:
        ``tokens`` (K_cap, C_cap) long: the K distinct tokens' char ids cut to C_cap characters,
        rows K.. zero; K_cap is K rounded up by ``TOKEN_STEPS`` (at most 2 * B * T), C_cap the
        longest of them rounded up to ``CHAR_CAPS``, so the columns cut hold padding only.
        ``token_index`` (2, B, T) long: ``tokens[token_index]``, padded back to max_chars with
        padding characters, is ``fwd_chars``/``bwd_chars`` (all-zero rows stay zero rows).
    """
    unique, inverse = torch.unique(rows, return_inverse=True)  # (K,), (2, B, T)
    chars = table[unique].long()  # (K, max_chars)
    used = int(((chars != PADDING_CHAR + 1) & (chars != 0)).sum(1).max()) if len(chars) else 0
    c_cap = round_up(used, char_caps(table.shape[1]))
    k_cap = min(round_up(len(unique), token_caps(rows.numel())), rows.numel())
    tokens = torch.zeros(k_cap, c_cap, dtype=torch.long)
    tokens[: len(unique)] = chars[:, :c_cap]
    return {"tokens": tokens, "token_index": inverse}


def token_caps(n_positions: int) -> list[int]:
    """The K_cap ladder up to ``n_positions`` (2 * B * T, the most tokens a batch can hold)."""
    caps, scale = [], 4
    while not caps or caps[-1] < n_positions:
        caps += [m * scale for m in TOKEN_STEPS]
        scale *= 2
    return [c for c in caps if 16 <= c < n_positions] + [n_positions]


def char_caps(max_chars: int) -> list[int]:
    """The C_cap ladder for ids ``max_chars`` wide."""
    return sorted({min(c, max_chars) for c in CHAR_CAPS} | {max_chars})


def round_up(n: int, ladder: list[int]) -> int:
    """The least step of ``ladder`` (ascending, its last one the largest value) at least ``n``."""
    return next((c for c in ladder if c >= n), ladder[-1])


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
        rows = self.rows(tokens)  # first: it may grow or clear the table
        return self._table[rows].long()

    @property
    def table(self) -> torch.Tensor:
        """(entries, C) int16 char ids, row 0 all zeros; valid for the last ``rows`` call."""
        return self._table

    def rows(self, tokens: Sequence[Sequence[str]]) -> torch.Tensor:
        """(B, T) long rows of ``table`` of equally long rows of tokens, one row per string."""
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
        return long_tensor([[index[t] for t in row] for row in tokens])
