"""The bidirectional language model: character CNN, then forward and backward LSTMs."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from elmo_lm.cpu.path import allow_tf32, may_read_on_host
from elmo_lm.formats.atomic import atomic_path
from elmo_lm.formats.characters import BOS_TOKEN, EOS_TOKEN, token_to_char_ids
from elmo_lm.formats.options import BiLMOptions
from elmo_lm.formats.pretrained import resolve
from elmo_lm.formats.weights_file import load_weights, save_weights
from elmo_lm.model.char_cnn import CharCNN
from elmo_lm.model.distinct import distinct_rows
from elmo_lm.model.lstm import ElmoLstm, LstmState, dropout

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
    """

    def __init__(
        self,
        options: BiLMOptions,
        stateful: bool = False,
        warm_start: bool = True,
        warm_up: Sequence[str] = WARM_UP,
    ):
        super().__init__()
        options.validate()
        self.options = copy.deepcopy(options)
        self.stateful = stateful
        self.warm_start = warm_start
        self.warm_up = tuple(warm_up)
        if warm_start and not self.warm_up:
            raise ValueError("warm_up needs at least one sentence; or pass warm_start=False")
        self.char_cnn = CharCNN(self.options)
        self.lstm = ElmoLstm(self.options)
        max_chars = self.options.char_cnn.max_characters_per_token
        self.register_buffer(
            "_bos", torch.tensor(token_to_char_ids(BOS_TOKEN, max_chars)), persistent=False
        )
        self.register_buffer(
            "_eos", torch.tensor(token_to_char_ids(EOS_TOKEN, max_chars)), persistent=False
        )
        self._state: LstmState | None = None
        self._warm: tuple[tuple, LstmState] | None = None  # (context and weights' versions, state)

    @property
    def output_dim(self) -> int:
        return 2 * self.options.lstm.projection_dim

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
    ) -> BiLM:
        """Loads an ``options.json`` + weights ``.hdf5`` pair written by any ELMo trainer.

        The model comes back in eval mode (no dropout); call ``.train()`` to fine-tune it.
        """
        bilm = cls(BiLMOptions.from_json(options_file), stateful=stateful, warm_start=warm_start)
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
            forward, backward: the inputs of each direction in its reading order, equally many.

        Returns:
            h (n_layers, 2, 1, P) and c (n_layers, 2, 1, H).
        """
        if len(forward) != len(backward) or not forward:
            raise ValueError(
                "context_state needs equally many forward and backward tokens, at least one"
            )
        max_chars = self.options.char_cnn.max_characters_per_token
        ids = torch.tensor(
            [[[token_to_char_ids(t, max_chars) for t in tokens]] for tokens in (forward, backward)],
            device=self._bos.device,
        )  # (2, 1, K, C)
        _, state = self.lstm(self.embed_tokens(ids))
        return state

    def warm_state(self, batch_size: int = 1) -> LstmState:
        """The state each sentence starts from with ``warm_start``: after the ``warm_up``
        sentences, read from a zero state.

        Computed once and kept while the weights stay the same; recomputed at every call in
        training mode or when gradients can reach the weights (fine-tuning), so that it is never
        stale and its gradient flows. Returns h (n_layers, 2, batch_size, P) and
        c (n_layers, 2, batch_size, H).
        """
        params = [*self.char_cnn.parameters(), *self.lstm.parameters()]
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
        """Context-independent token embeddings, (..., max_chars) -> (..., P).

        Each distinct token of the batch goes through the character CNN once. With a
        ``token_cache`` (``elmo_lm.embedding.token_cache.TokenCache``), cached tokens skip the CNN.
        """
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
            char_ids: (batch, time, max_chars) from ``batch_to_ids``, without ``<S>``/``</S>``.
            token_cache: precomputed token embeddings used in place of the character CNN for
                the tokens they hold (``elmo_lm.embedding.token_cache.TokenCache``).

        Returns:
            ``"layers"``: n_layers + 1 tensors (batch, time, 2P), zero at padding; layer 0 is
            the token embedding twice, layer l the forward and backward LSTM layer l.
            ``"mask"``: (batch, time) bool.
        """
        allow_tf32(char_ids.device)
        mask = (char_ids > 0).any(-1)  # (B, T)
        lengths = mask.sum(1)
        batch, time, _ = char_ids.shape
        # <S> w1 .. wn </S>, padding after: (B, T + 2, C).
        ids = char_ids.new_zeros(batch, time + 2, char_ids.shape[-1])
        ids[:, 0] = self._bos
        ids[:, 1 : time + 1] = char_ids
        ids[torch.arange(batch, device=ids.device), lengths + 1] = self._eos
        full_lengths = lengths + 2
        emb = self.embed_tokens(ids, token_cache)  # (B, T + 2, P)
        inputs = torch.stack([emb, reverse_padded(emb, full_lengths)])  # (2, B, T + 2, P)
        state = self._initial_state(batch, emb)
        outputs, new_state = self.lstm(inputs, state, full_lengths)
        if self.stateful:
            self._keep_state(new_state)
        keep = mask.unsqueeze(-1).to(emb.dtype)
        layers = [torch.cat([emb, emb], dim=-1)[:, 1 : time + 1] * keep]
        for out in outputs:
            backward = reverse_padded(out[1], full_lengths)
            layers.append(torch.cat([out[0], backward], dim=-1)[:, 1 : time + 1] * keep)
        return {"layers": layers, "mask": mask}

    def lm_forward(
        self,
        fwd_chars: torch.Tensor,
        bwd_chars: torch.Tensor,
        state: LstmState | None = None,
        tokens: torch.Tensor | None = None,
        token_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, LstmState]:
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

        Returns:
            Top-layer outputs (batch, time, P) of the forward and the backward LM (with dropout
            in training mode), and the state at the end of the window.
        """
        if tokens is not None and token_index is not None and not may_read_on_host(tokens):
            # index_select, whose backward is one index_add
            emb = torch.index_select(self.char_cnn(tokens), 0, token_index.reshape(-1))
            emb = emb.view(*token_index.shape, -1)  # (2, B, T, P)
        else:
            emb = self.embed_tokens(torch.stack([fwd_chars, bwd_chars]))  # (2, B, T, P)
        outputs, new_state = self.lstm(emb, state)
        top = outputs[-1]
        if self.training and self.options.dropout > 0:
            top = dropout(top, self.options.dropout)
        return top[0], top[1], new_state

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
