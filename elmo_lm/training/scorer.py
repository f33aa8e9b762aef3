"""A trained biLM as a language model: per-sentence log-probabilities and the likeliest words
at a position in context, from the full softmax.

``LanguageModel.from_checkpoint(path)`` loads the biLM and its softmax (``ElmoLM``) in eval mode;
``LanguageModel.from_pretrained(model)`` the same from an ``export.py ... softmax=true`` directory
or the published ``original`` (its softmax and vocabulary downloaded beside its weights).
Sentences are read as in training and held-out scoring (``elmo_lm.data.packing.sentence_pairs``):
the forward LM reads ``<S> w1 .. wn`` and predicts ``w1 .. wn </S>``, the backward LM reads
``</S> wn .. w1`` and predicts ``wn .. w1 <S>``; each sentence starts from a zero state or the
warm state (``BiLM.warm_state``), whatever batch it is in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from elmo_lm.data.packing import CharIdCache, input_ids, long_tensor, sentence_pairs
from elmo_lm.data.vocabulary import SPECIAL_TOKENS, Vocabulary, read_tokens
from elmo_lm.errors import UserError
from elmo_lm.formats.characters import BOS_TOKEN, EOS_TOKEN
from elmo_lm.formats.pretrained import resolve
from elmo_lm.formats.published import PUBLISHED, WITH_SOFTMAX
from elmo_lm.formats.softmax_file import (
    load_softmax,
    softmax_file_for,
    softmax_name,
    specials_first,
    vocab_file_for,
)
from elmo_lm.model.bilm import BiLM
from elmo_lm.model.softmax import full_softmax_nll, logit_budget
from elmo_lm.training.module import ElmoLM

STARTS = ("zero", "warm")


class ScorerError(UserError):
    """Sentences or positions the language model cannot score (an empty sentence, a position
    outside its sentence, an unknown start)."""


@dataclass
class SentenceScore:
    """The log-probabilities (natural log) of one sentence under both LMs.

    ``logprob_fwd`` sums the forward LM's targets ``w1 .. wn </S>``, ``logprob_bwd`` the backward
    LM's ``wn .. w1 <S>``; ``logprob`` is their mean and ``targets`` their number per direction
    (n + 1); the perplexities are ``exp(-logprob / targets)`` of each.
    """

    tokens: list[str]
    logprob_fwd: float
    logprob_bwd: float
    logprob: float
    targets: int
    ppl_fwd: float
    ppl_bwd: float
    ppl: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Substitutes:
    """The ``k`` likeliest words at ``position`` of ``tokens`` (specials left out), each a
    ``(word, log-probability)`` pair, best first: ``forward`` given the left context,
    ``backward`` given the right context, ``both`` from the renormalised product of the two."""

    tokens: list[str]
    position: int
    word: str
    forward: list[tuple[str, float]]
    backward: list[tuple[str, float]]
    both: list[tuple[str, float]]

    def to_dict(self) -> dict:
        return asdict(self)


class LanguageModel:
    """A trained biLM and its softmax, as a scorer of sentences (eval mode, full softmax).

    Args:
        module: the trained ``ElmoLM``; put in eval mode here.
        batch_size: sentences run side by side.
    """

    def __init__(self, module: ElmoLM, batch_size: int = 64):
        if not module.options.bidirectional:
            raise ScorerError(
                "this is a forward LM alone (bidirectional: false); the scorer's scores and "
                "substitutes need both directions: use evaluate.py for its perplexity"
            )
        self.module = module.eval()
        self.vocab: Vocabulary = module.vocab
        self.batch_size = max(1, int(batch_size))
        self._chars = CharIdCache(module.options.max_characters_per_token)
        self._specials = torch.tensor([self.vocab.token_to_id(t) for t in SPECIAL_TOKENS])

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
    ) -> LanguageModel:
        """The language model of a ``train.py`` checkpoint; its vocabulary is the checkpoint's.

        Raises:
            CheckpointError: ``path`` is missing or not a checkpoint (one line).
        """
        return cls(ElmoLM.from_checkpoint(path, map_location=device), batch_size)

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
    ) -> LanguageModel:
        """The language model of an exported model (``elmo_lm.formats.pretrained.resolve``: a
        directory, weights file, ``hf://`` model) whose softmax file and vocabulary are beside
        its weights (``export.py ... softmax=true``), or of the published ``original``, whose
        softmax and vocabulary are downloaded beside its weights. The rows follow the
        vocabulary's lines (the specials moved first, rows with them: ``specials_first``).

        Raises:
            ScorerError: no softmax file beside the weights (one line: export it).
            SoftmaxFileError, VocabularyError, PretrainedError: the files do not load (one line).
        """
        options_file, weights_file = resolve(model, softmax=True)
        softmax_file = softmax_file_for(weights_file)
        if softmax_file is None and str(model) in PUBLISHED and not Path(model).exists():
            raise ScorerError(
                f"{model}: AllenNLP published no softmax for this model (only for "
                f"{', '.join(WITH_SOFTMAX)}), which scoring needs; pass one of those, or a model "
                "exported with softmax=true"
            )
        if softmax_file is None:
            raise ScorerError(
                f"{model}: no softmax beside {weights_file} ({softmax_name(weights_file)}), "
                "which scoring needs; export the checkpoint with softmax=true"
            )
        vocab_file = vocab_file_for(softmax_file)
        tokens = read_tokens(vocab_file)
        bilm = BiLM.from_hdf5(options_file, weights_file)
        weight, bias = load_softmax(softmax_file, len(tokens), bilm.options.lstm.projection_dim)
        tokens, weight, bias = specials_first(tokens, weight, bias, vocab_file)
        module = ElmoLM(bilm.options.to_dict(), tokens, softmax="full")
        module.bilm.load_state_dict(bilm.state_dict())
        with torch.no_grad():
            module.softmax.weight.copy_(weight)
            module.softmax.bias.copy_(bias[:, None])
        return cls(module.to(device), batch_size)

    @property
    def device(self) -> torch.device:
        return self.module.softmax.weight.device

    def score_sentences(
        self,
        sentences: Sequence[Sequence[str]],
        start: str = "warm",
        max_sentence_tokens: int | None = None,
    ) -> list[SentenceScore]:
        """Each sentence's log-probabilities under the forward and the backward LM.

        Args:
            sentences: tokenized sentences (lists of words, without ``<S>``/``</S>``).
            start: ``zero`` (each sentence from a zero state, as ``evaluate``'s
                ``ppl_zero_state``) or ``warm`` (from ``BiLM.warm_state``, as the embedder).
            max_sentence_tokens: a longer sentence is scored in pieces of at most this many
                words, each from the start state, their scores summed (``evaluate`` cuts them
                alike); None: whole.

        Raises:
            ScorerError: an empty sentence or an unknown ``start``.
        """
        sentences = _checked(sentences)
        check_start(start)
        cap = max_sentence_tokens or max(len(s) for s in sentences)
        pieces = [
            (i, s[j : j + cap]) for i, s in enumerate(sentences) for j in range(0, len(s), cap)
        ]
        sums = torch.zeros(len(sentences), 3, dtype=torch.float64)  # nll fwd, nll bwd, count
        for batch in self._batches(pieces, lambda piece: len(piece[1])):
            owners = torch.tensor([i for i, _ in batch])
            sums.index_add_(0, owners, self._piece_scores([p for _, p in batch], start))
        return [_score(list(s), *row.tolist()) for s, row in zip(sentences, sums)]

    def substitutes(
        self,
        sentences: Sequence[Sequence[str]],
        positions: Sequence[int],
        k: int = 10,
        start: str = "warm",
    ) -> list[Substitutes]:
        """The ``k`` likeliest words at each ``positions[q]`` (0-based) of ``sentences[q]``.

        The forward LM's distribution there is given the words to its left, the backward LM's
        given those to its right; ``both`` is ``log_softmax(log p_fwd + log p_bwd)`` over the
        vocabulary. ``<S>``, ``</S>`` and ``<UNK>`` are left out of the lists (not out of the
        distributions).

        Raises:
            ScorerError: an empty sentence, a position outside its sentence, an unknown
                ``start``, or as many positions as sentences not given.
        """
        sentences = _checked(sentences)
        check_start(start)
        if len(positions) != len(sentences):
            raise ScorerError(
                f"{len(positions)} positions for {len(sentences)} sentences: give one each"
            )
        for q, (s, p) in enumerate(zip(sentences, positions)):
            if not isinstance(p, int) or not 0 <= p < len(s):
                raise ScorerError(
                    f"position={p} is outside sentence {q + 1} of {len(s)} words "
                    f"(positions 0 to {len(s) - 1}: {' '.join(s)!r})"
                )
        k = max(1, min(int(k), len(self.vocab) - len(SPECIAL_TOKENS)))
        queries = list(enumerate(zip(sentences, positions)))
        out: list[Substitutes | None] = [None] * len(queries)
        for batch in self._batches(queries, lambda query: len(query[1][0])):
            logp_f, logp_b = self._position_log_probs([q for _, q in batch], start)  # (Q, V)
            both = torch.log_softmax(logp_f + logp_b, -1)
            lists = [self._top(x, k) for x in (logp_f, logp_b, both)]
            for row, (i, (s, p)) in enumerate(batch):
                out[i] = Substitutes(list(s), p, s[p], *(lst[row] for lst in lists))
        return out

    def _batches(self, items: list, length) -> list[list]:
        """``items`` in batches of ``batch_size``, the longest (``length(item)``) together: less
        padding, and the results do not depend on the batch."""
        order = sorted(items, key=lambda item: -length(item))
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def _lm_outputs(self, sentences: list[list[str]], start: str):
        """Top-layer outputs (B, T, P) of both LMs over right-padded rows of inputs (``<S> w1
        .. wn`` and ``</S> wn .. w1``; T = longest n + 1), and the (B, T) target ids of each
        (-1 at padding)."""
        B, T = len(sentences), max(len(s) for s in sentences) + 1
        inputs = {d: [[""] * T for _ in range(B)] for d in ("fwd", "bwd")}
        targets = {d: torch.full((B, T), -1, dtype=torch.long) for d in ("fwd", "bwd")}
        for row, words in enumerate(sentences):
            ids = self.vocab.encode([BOS_TOKEN, *words, EOS_TOKEN])
            for d in ("fwd", "bwd"):
                x, y = sentence_pairs(list(words), ids, reverse=d == "bwd")
                inputs[d][row][: len(x)] = x
                targets[d][row, : len(y)] = torch.tensor(y)
        device = self.device
        chars = [self._chars(inputs[d]).to(device) for d in ("fwd", "bwd")]  # (B, T, C)
        bilm = self.module.bilm
        state = None
        if start == "warm":
            state = tuple(s.contiguous() for s in bilm.warm_state(B))
        words = None
        if bilm.options.word_inputs:  # the inputs' vocabulary ids, -1 at padding
            words = tuple(
                long_tensor([input_ids(self.vocab, r) for r in inputs[d]]).to(device)
                for d in ("fwd", "bwd")
            )
        fwd, bwd, _ = bilm.lm_forward(*chars, state, word_ids=words)
        return fwd, bwd, targets["fwd"].to(device), targets["bwd"].to(device)

    @torch.inference_mode()
    def _piece_scores(self, pieces: list[list[str]], start: str) -> torch.Tensor:
        """(B, 3) float64 summed nll fwd, nll bwd and target count of each piece."""
        fwd, bwd, t_fwd, t_bwd = self._lm_outputs(pieces, start)
        softmax = self.module.softmax
        out = torch.zeros(len(pieces), 3, dtype=torch.float64, device=self.device)
        for col, (x, t) in enumerate(((fwd, t_fwd), (bwd, t_bwd))):
            keep = t >= 0
            rows = keep.nonzero()[:, 0]
            x = x[keep]  # (N, P)
            nll = full_softmax_nll(x, t[keep], softmax.weight, softmax.bias, logit_budget(x))
            out[:, col].index_add_(0, rows, nll.double())
            if col == 0:
                out[:, 2] = keep.sum(1).double()
        return out.cpu()

    @torch.inference_mode()
    def _position_log_probs(self, queries: list[tuple[list[str], int]], start: str):
        """(Q, V) log-probabilities of the word at each query's position: the forward LM's after
        ``<S> w1 .. w_{p-1}``, the backward LM's after ``</S> wn .. w_{p+1}``."""
        sentences = [list(s) for s, _ in queries]
        fwd, bwd, _, _ = self._lm_outputs(sentences, start)
        rows = torch.arange(len(queries), device=self.device)
        at_fwd = torch.tensor([p for _, p in queries], device=self.device)
        at_bwd = torch.tensor([len(s) - 1 - p for s, p in queries], device=self.device)
        softmax = self.module.softmax
        bias = softmax.bias.squeeze(1)
        return tuple(
            torch.log_softmax(F.linear(h[rows, at].float(), softmax.weight, bias), -1)
            for h, at in ((fwd, at_fwd), (bwd, at_bwd))
        )

    def _top(self, log_probs: torch.Tensor, k: int) -> list[list[tuple[str, float]]]:
        """Per row of (Q, V) log-probabilities, the ``k`` best non-special words."""
        masked = log_probs.clone()
        masked[:, self._specials.to(masked.device)] = -math.inf
        values, ids = masked.topk(k, -1)
        tokens = self.vocab.tokens
        return [
            [(tokens[i], float(v)) for v, i in zip(vs, row)]
            for vs, row in zip(values.tolist(), ids.tolist())
        ]


def _checked(sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    """The sentences as lists of words, checked for empty ones."""
    if isinstance(sentences, str) or not sentences:
        raise ScorerError("no sentences given: pass a list of tokenized sentences")
    out = []
    for i, s in enumerate(sentences):
        if isinstance(s, str):
            raise ScorerError(f"sentence {i + 1} is a string: pass lists of tokens (text.split())")
        words = [str(w) for w in s]
        if not words or any(not w for w in words):
            raise ScorerError(f"sentence {i + 1} is empty or has an empty token: give it words")
        out.append(words)
    return out


def check_start(start: str) -> None:
    """Raises ``ScorerError`` unless ``start`` is one of ``STARTS``."""
    if start not in STARTS:
        raise ScorerError(f"start={start!r}: use one of {', '.join(STARTS)}")


def _score(tokens: list[str], nll_fwd: float, nll_bwd: float, count: float) -> SentenceScore:
    n = int(count)
    mean = -0.5 * (nll_fwd + nll_bwd)
    return SentenceScore(
        tokens=tokens,
        logprob_fwd=-nll_fwd,
        logprob_bwd=-nll_bwd,
        logprob=mean,
        targets=n,
        ppl_fwd=math.exp(nll_fwd / n),
        ppl_bwd=math.exp(nll_bwd / n),
        ppl=math.exp(-mean / n),
    )
