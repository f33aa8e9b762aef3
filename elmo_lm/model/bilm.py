"""The bidirectional language model: character CNN, then forward and backward LSTMs.

As the original trainer, the same class holds the models without a character CNN (word inputs,
``elmo_lm.model.word_embedding``) and the forward LM alone (``bidirectional: false``), whose
layers are half as wide: ``output_dim`` is P, layer 0 the token embedding once.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from elmo_lm.cpu.path import allow_tf32, may_read_on_host
from elmo_lm.formats.atomic import atomic_path
from elmo_lm.formats.characters import BOS_TOKEN, EOS_TOKEN, batch_to_ids, token_to_char_ids
from elmo_lm.formats.options import BiLMOptions
from elmo_lm.formats.pretrained import resolve
from elmo_lm.formats.weights_file import WeightsFileError, load_weights, save_weights
from elmo_lm.model.char_cnn import CharCNN
from elmo_lm.model.distinct import distinct_rows
from elmo_lm.model.lstm import ElmoLstm, LstmState, dropout
from elmo_lm.model.word_embedding import WordEmbedding

WARM_UP: tuple[str, ...] = ("the man said it .", "there was a cat .")
"""The default warm-up context: short, generic sentences (lower-case English, whitespace-
tokenized) that a biLM reads before each sentence with ``warm_start``. More than one, so that
the zero state they start from is forgotten (docs/EMBEDDINGS.md, bench/bench_warm_start.py)."""


def warm_up_inputs(sentences: Sequence[str] = WARM_UP) -> tuple[list[str], list[str]]:
    """The input tokens of a warm-up context, forward and backward, each in reading order.

    In training, a sentence's ``<S>`` follows the inputs of the sentence before it
    (``<S> w1 .. wn``; ``</S>`` is never an input), and the backward LM's ``</S>`` follows the
    reversed sentence before it (``</S> wn .. w1``). The context is those inputs for
    ``sentences``, read in order.
    """
    forward = [t for s in sentences for t in (BOS_TOKEN, *s.split())]
    backward = [t for s in sentences for t in (EOS_TOKEN, *reversed(s.split()))]
    return forward, backward


def bilm_state_detach(state: LstmState | None) -> LstmState | None:
    """The state with its history cut, for carrying it into the next training window."""
    return None if state is None else (state[0].detach(), state[1].detach())


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverses the first ``lengths[b]`` steps of each row of x (batch, time, ...); the rest stays."""
    batch, time = x.shape[:2]
    steps = torch.arange(time, device=x.device).expand(batch, time)
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    return x.gather(1, index.view(batch, time, *([1] * (x.dim() - 2))).expand_as(x))


class BiLM(nn.Module):
    """The ELMo biLM.

    Args:
        options: the model's shape (``options.json``).
        stateful: carry each row's LSTM state from one call to the next, like the original
            tools; ``reset_states()`` clears it. Off by default: a sentence's vectors then do not
            depend on what was embedded before.
        warm_start: start each sentence (a stateful model: each new row) from ``warm_state()``,
            the state after reading the ``warm_up`` sentences, as the LM in training always
            starts a sentence after other ones. Off: from a zero state, as the original tools
            start their first batch (needed to reproduce them bit for bit).
        warm_up: the warm-up sentences (whitespace-tokenized); ``WARM_UP`` is lower-case English.
            For another language or casing, a few short typical sentences of the training text.
        vocab: word inputs only: the tokens in id order (``vocab.txt``), which map tokens to
            ids; None: the model takes ids only (``n_tokens_vocab`` of them).
    """

    def __init__(
        self,
        options: BiLMOptions,
        stateful: bool = False,
        warm_start: bool = True,
        warm_up: Sequence[str] = WARM_UP,
        vocab: Sequence[str] | None = None,
    ):
        super().__init__()
        options.validate()
        if options.word_inputs and vocab is not None and len(vocab) != options.n_tokens_vocab:
            raise ValueError(
                f"options.n_tokens_vocab={options.n_tokens_vocab}, but the vocabulary has "
                f"{len(vocab)} tokens"
            )
        self.options = copy.deepcopy(options)
        self.stateful = stateful
        self.warm_start = warm_start
        self.warm_up = tuple(warm_up)
        if warm_start and not self.warm_up:
            raise ValueError("warm_up needs at least one sentence; or pass warm_start=False")
        opts = self.options
        self.char_cnn = None if opts.word_inputs else CharCNN(opts)
        self.word_embedding = None
        if opts.word_inputs:
            size = opts.n_tokens_vocab if vocab is None else list(vocab)
            self.word_embedding = WordEmbedding(size, opts.lstm.projection_dim)
        self.lstm = ElmoLstm(opts)
        # <S> and </S> as inputs: char ids (C,), or shifted word ids (0-dim)
        bos, eos = (
            self.word_embedding.boundary_ids()
            if opts.word_inputs
            else (
                token_to_char_ids(t, opts.max_characters_per_token) for t in (BOS_TOKEN, EOS_TOKEN)
            )
        )
        self.register_buffer("_bos", torch.tensor(bos), persistent=False)
        self.register_buffer("_eos", torch.tensor(eos), persistent=False)
        self._state: LstmState | None = None
        self._warm: tuple[tuple, LstmState] | None = None  # (context and weights' versions, state)

    @property
    def output_dim(self) -> int:
        """The width of every layer: 2P for a biLM, P for a forward LM alone."""
        return self.options.n_directions * self.options.lstm.projection_dim

    @property
    def token_encoder(self) -> nn.Module:
        """What makes the context-independent token embeddings: the char CNN or the words'."""
        return self.char_cnn if self.char_cnn is not None else self.word_embedding

    def batch_inputs(self, sentences: Sequence[Sequence[str]]) -> torch.Tensor:
        """The ``forward`` input of plain tokenized sentences: (batch, time, max_chars) char
        ids (``batch_to_ids``), or for word inputs (batch, time) shifted word ids, 0 padding
        (the original's ``TokenBatcher`` without ``<S>``/``</S>``, which ``forward`` adds)."""
        if self.word_embedding is None:
            return batch_to_ids(sentences, self.options.max_characters_per_token)
        time = max((len(s) for s in sentences), default=0)
        ids = torch.zeros(len(sentences), time, dtype=torch.long)
        for row, sentence in enumerate(sentences):
            if sentence:
                ids[row, : len(sentence)] = torch.tensor(self.word_embedding.token_ids(sentence))
        return ids

    @property
    def n_representations(self) -> int:
        """L + 1: the token layer and one per LSTM layer (``options.lstm.n_layers`` is L)."""
        return self.options.lstm.n_layers + 1

    @classmethod
    def from_hdf5(
        cls,
        options_file: str | os.PathLike,
        weight_file: str | os.PathLike,
        stateful: bool = False,
        warm_start: bool = True,
        vocab_file: str | os.PathLike | None = None,
    ) -> BiLM:
        """Loads an ``options.json`` + weights ``.hdf5`` pair written by any ELMo trainer.

        The model comes back in eval mode (no dropout); call ``.train()`` to fine-tune it.
        A word-input model also reads its vocabulary: ``vocab_file``, else the ``vocab.txt``
        beside the weights (the original's inference takes the embedding from its
        ``embedding_weight_file``; ``dump_weights`` writes it into the weights file, as here).
        """
        options = BiLMOptions.from_json(options_file)
        vocab = None
        if options.word_inputs:
            vocab = word_vocabulary(vocab_file or Path(weight_file).with_name("vocab.txt"))
            options.n_tokens_vocab = len(vocab)
            warm_start = warm_start and all(t in vocab for t in (BOS_TOKEN, EOS_TOKEN))
        bilm = cls(options, stateful=stateful, warm_start=warm_start, vocab=vocab)
        load_weights(bilm, weight_file)
        return bilm.eval()

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike,
        weights: str | os.PathLike | None = None,
        stateful: bool = False,
        warm_start: bool = True,
        progress: bool | None = None,
    ) -> BiLM:
        """Loads a published model by name (``small``, ``medium``, ``original``,
        ``original-5.5b``), a directory holding ``options.json`` and the weights, or an options +
        weights pair of paths or ``http(s)`` URLs; downloads are cached (``elmo_lm.formats.pretrained``).

        Args:
            progress: a download progress bar on stderr; ``None``: when stderr is a terminal.
        """
        options_file, weight_file = resolve(model, weights, progress=progress)
        return cls.from_hdf5(options_file, weight_file, stateful=stateful, warm_start=warm_start)

    def to_hdf5(self, options_file: str | os.PathLike, weight_file: str | os.PathLike) -> None:
        """Writes the pair the original tools and AllenNLP read (``n_characters`` 262).

        Both files are written whole under temporary names first; the old ``options.json`` is
        removed before the new weights take their name, so that an interruption at any instant
        leaves the old pair, or the new one, or new weights with no options, never a new file
        beside an old one.
        """
        options = copy.deepcopy(self.options)
        if options.char_cnn is not None:
            options.char_cnn.n_characters = 262
        with atomic_path(options_file) as options_tmp, atomic_path(weight_file) as weights_tmp:
            save_weights(self, weights_tmp)
            options.save_json(options_tmp)
            Path(options_file).unlink(missing_ok=True)

    def reset_states(self) -> None:
        """Forgets the carried state: the next call starts every row afresh."""
        self._state = None

    def context_state(self, forward: Sequence[str], backward: Sequence[str]) -> LstmState:
        """The LSTM state after reading these input tokens from a zero state.

        Args:
            forward, backward: the inputs of each direction in its reading order, equally many
                (a forward LM alone reads ``forward`` only).

        Returns:
            h (n_layers, D, 1, P) and c (n_layers, D, 1, H).
        """
        if len(forward) != len(backward) or not forward:
            raise ValueError(
                "context_state needs equally many forward and backward tokens, at least one"
            )
        directions = (forward, backward)[: self.options.n_directions]
        if self.word_embedding is not None:
            rows = [[self.word_embedding.token_ids(tokens)] for tokens in directions]
        else:
            max_chars = self.options.max_characters_per_token
            rows = [[[token_to_char_ids(t, max_chars) for t in tokens]] for tokens in directions]
        ids = torch.tensor(rows, device=self._bos.device)  # (D, 1, K, C) or (D, 1, K)
        _, state = self.lstm(self.embed_tokens(ids))
        return state

    def warm_state(self, batch_size: int = 1) -> LstmState:
        """The state each sentence starts from with ``warm_start``: after the ``warm_up``
        sentences, read from a zero state.

        Computed once and kept while the weights stay the same; recomputed at every call in
        training mode or when gradients can reach the weights (fine-tuning), so that it is never
        stale and its gradient flows. Returns h (n_layers, D, batch_size, P) and
        c (n_layers, D, batch_size, H).
        """
        params = [*self.token_encoder.parameters(), *self.lstm.parameters()]
        fresh = self.training or (torch.is_grad_enabled() and any(p.requires_grad for p in params))
        # Any in-place change of a weight (optimizer step, load_state_dict) bumps its version;
        # a move to another device or dtype changes its storage.
        key = (self.warm_up, *((p.data_ptr(), p._version, p.dtype) for p in params))
        if fresh or self._warm is None or self._warm[0] != key:
            with torch.autocast(self._bos.device.type, enabled=False):  # the same under autocast
                state = self.context_state(*warm_up_inputs(self.warm_up))
            self._warm = None if fresh else (key, state)
        else:
            state = self._warm[1]
        h, c = state
        return h.expand(-1, -1, batch_size, -1), c.expand(-1, -1, batch_size, -1)

    def embed_tokens(self, char_ids: torch.Tensor, token_cache=None) -> torch.Tensor:
        """Context-independent token embeddings, (..., max_chars) -> (..., P); for word inputs
        (...) shifted word ids -> (..., P).

        Each distinct token of the batch goes through the character CNN once. With a
        ``token_cache`` (``elmo_lm.embedding.token_cache.TokenCache``), cached tokens skip the CNN.
        """
        if self.word_embedding is not None:
            return self.word_embedding(char_ids)
        if token_cache is not None:
            return token_cache.encode(char_ids, self.embed_tokens)
        flat = char_ids.reshape(-1, char_ids.shape[-1])
        if not may_read_on_host(flat):  # an accelerator: every token, a fixed shape
            return self.char_cnn(flat).reshape(*char_ids.shape[:-1], -1)
        unique, inverse = distinct_rows(flat)
        # index_select, whose backward is one index_add (indexing's is a slower index_put)
        embedded = torch.index_select(self.char_cnn(unique), 0, inverse)
        return embedded.reshape(*char_ids.shape[:-1], -1)

    def forward(self, char_ids: torch.Tensor, token_cache=None) -> dict[str, object]:
        """Representations of plain sentences.

        Args:
            char_ids: (batch, time, max_chars) from ``batch_to_ids``, without ``<S>``/``</S>``;
                for word inputs (batch, time) shifted word ids (``batch_inputs``).
            token_cache: precomputed token embeddings used in place of the character CNN for
                the tokens they hold (``elmo_lm.embedding.token_cache.TokenCache``).

        Returns:
            ``"layers"``: n_layers + 1 tensors (batch, time, 2P), zero at padding; layer 0 is
            the token embedding twice, layer l the forward and backward LSTM layer l. A forward
            LM alone: (batch, time, P), the embedding once and the forward layers.
            ``"mask"``: (batch, time) bool.
        """
        allow_tf32(char_ids.device)
        words = self.word_embedding is not None
        mask = char_ids > 0 if words else (char_ids > 0).any(-1)  # (B, T)
        lengths = mask.sum(1)
        batch, time = char_ids.shape[:2]
        # <S> w1 .. wn </S>, padding after: (B, T + 2, C), or (B, T + 2) word ids.
        ids = char_ids.new_zeros(batch, time + 2, *char_ids.shape[2:])
        ids[:, 0] = self._bos
        ids[:, 1 : time + 1] = char_ids
        ids[torch.arange(batch, device=ids.device), lengths + 1] = self._eos
        full_lengths = lengths + 2
        emb = self.embed_tokens(ids, token_cache)  # (B, T + 2, P)
        two = self.options.bidirectional
        directions = [emb, reverse_padded(emb, full_lengths)] if two else [emb]
        inputs = torch.stack(directions)  # (D, B, T + 2, P)
        state = self._initial_state(batch, emb)
        outputs, new_state = self.lstm(inputs, state, full_lengths)
        if self.stateful:
            self._keep_state(new_state)
        keep = mask.unsqueeze(-1).to(emb.dtype)
        layers = [torch.cat(directions[:1] * len(directions), dim=-1)[:, 1 : time + 1] * keep]
        for out in outputs:
            parts = [out[0], reverse_padded(out[1], full_lengths)] if two else [out[0]]
            layers.append(torch.cat(parts, dim=-1)[:, 1 : time + 1] * keep)
        return {"layers": layers, "mask": mask}

    def lm_forward(
        self,
        fwd_chars: torch.Tensor | None,
        bwd_chars: torch.Tensor | None,
        state: LstmState | None = None,
        tokens: torch.Tensor | None = None,
        token_index: torch.Tensor | None = None,
        word_ids: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, LstmState]:
        """The training path over continuous token streams.

        Args:
            fwd_chars: (batch, time, max_chars) forward-stream input tokens.
            bwd_chars: (batch, time, max_chars) backward-stream input tokens (reversed text).
            state: the state the previous window ended with, or None for zeros.
            tokens, token_index: the loader's distinct tokens of both streams, (K_cap, C_cap)
                char ids, and (2, batch, time) indices into them (``elmo_lm.data.packing``).
                Where no host read is allowed (an accelerator) only these go through the
                char CNN, windows up to ``C_cap``; the CPU paths find the distinct tokens
                themselves and ignore them.
            word_ids: word inputs: the (batch, time) vocabulary ids of each stream's inputs,
                -1 where there is none (``fwd_ids``, ``bwd_ids``); the char ids are not read (None
                in the loaders' batches of a word-input LM).

        Returns:
            Top-layer outputs (batch, time, P) of the forward and the backward LM (with dropout
            in training mode; None for the backward of a forward LM alone), and the state at
            the end of the window.
        """
        n = self.options.n_directions
        if self.word_embedding is not None:
            if word_ids is None:
                raise ValueError("a word-input LM needs word_ids (the batch's fwd_ids, bwd_ids)")
            emb = self.word_embedding(torch.stack(word_ids[:n]) + 1)  # (D, B, T, P)
        elif n == 1:
            emb = self.embed_tokens(fwd_chars[None])  # (1, B, T, P)
        elif tokens is not None and token_index is not None and not may_read_on_host(tokens):
            # index_select, whose backward is one index_add
            emb = torch.index_select(self.char_cnn(tokens), 0, token_index.reshape(-1))
            emb = emb.view(*token_index.shape, -1)  # (2, B, T, P)
        else:
            emb = self.embed_tokens(torch.stack([fwd_chars, bwd_chars]))  # (2, B, T, P)
        outputs, new_state = self.lstm(emb, state)
        top = outputs[-1]
        if self.training and self.options.dropout > 0:
            top = dropout(top, self.options.dropout)
        return top[0], (top[1] if n == 2 else None), new_state

    def _start_state(self, batch: int, like: torch.Tensor) -> LstmState:
        """The state of rows that start afresh: warm, or zeros."""
        if self.warm_start:
            return self.warm_state(batch)
        return self.lstm.zero_state(batch, like)

    def _initial_state(self, batch: int, like: torch.Tensor) -> LstmState | None:
        if not self.stateful or self._state is None:
            return self.warm_state(batch) if self.warm_start else None
        h, c = self._state
        if h.shape[2] < batch:  # more rows than ever before: the new rows start afresh
            nh, nc = self._start_state(batch - h.shape[2], like)
            h, c = torch.cat([h, nh.detach()], 2), torch.cat([c, nc.detach()], 2)
            self._state = (h, c)
        return h[:, :, :batch], c[:, :, :batch]

    def _keep_state(self, new_state: LstmState) -> None:
        h_new, c_new = (s.detach() for s in new_state)
        if self._state is None or self._state[0].shape[2] <= h_new.shape[2]:
            self._state = (h_new, c_new)
            return
        # A smaller batch: rows past it keep their state.
        h, c = (s.clone() for s in self._state)
        h[:, :, : h_new.shape[2]] = h_new
        c[:, :, : c_new.shape[2]] = c_new
        self._state = (h, c)


def word_vocabulary(path: str | os.PathLike) -> list[str]:
    """The tokens of a word-input model's ``vocab.txt``, one a line, in id order.

    Raises:
        WeightsFileError: the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(
            f"{path}: vocabulary not found; a word-input model needs the vocab.txt written "
            "with its weights (pass vocab_file=)"
        )
    return [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8").splitlines()]
