"""Contextual word vectors from a trained biLM, for use in other models.

Three ways in: ``Elmo.embed_sentences`` turns tokenized sentences into numpy arrays (no
gradients, batched by length), ``Elmo.embed_texts`` does the same for raw strings, cut into
tokens as the model's training text was (``Elmo.tokenizer``, ``choose_tokenizer``), and
``Elmo.forward`` is an ``nn.Module`` call whose learned ``ScalarMix`` weights a downstream model
trains while the biLM stays frozen.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from elmo_lm.embedding.pooling import check_pool, pool_tokens
from elmo_lm.embedding.token_cache import TokenCache
from elmo_lm.embedding.word_vectors import WordVectors
from elmo_lm.errors import UserError
from elmo_lm.formats.checkpoint import bilm_weights, load_checkpoint
from elmo_lm.formats.options import BiLMOptions
from elmo_lm.formats.pretrained import PUBLISHED as PUBLISHED_MODELS
from elmo_lm.formats.pretrained import resolve
from elmo_lm.formats.tokenize import PUBLISHED, TOKENIZER_FILE, TokenizerSpec, make_tokenizer
from elmo_lm.model.bilm import BiLM
from elmo_lm.model.scalar_mix import ScalarMix

MODES = ("all", "concat", "top", "average", "mix")
"""What ``embed_sentences`` returns per sentence of n tokens (D = 2 * projection_dim):
``all``: the layers (L + 1, n, D); ``concat``: the layers side by side (n, (L + 1) * D);
``top``: the top LSTM layer (n, D); ``average``: the mean of the layers (n, D);
``mix``: the first ``ScalarMix`` (n, D)."""

TOKENIZE = ("auto", "none", "whitespace", "moses")
"""How ``embed_texts`` (and ``elmo-embed tokenize=``) cut raw text: ``auto`` as the model's
training text was cut (``Elmo.tokenizer``; whitespace where the model recorded none),
``none``/``whitespace`` on whitespace only (the text is tokenized already), ``moses`` Moses'
tokenizer (the published models')."""

AS_GIVEN = TokenizerSpec("whitespace", normalize=None)
"""Text that is tokenized already: split on whitespace, every character kept as it is."""

log = logging.getLogger(__name__)


class ElmoError(UserError):
    """A model file or an input that cannot be embedded."""


class EmbeddedText(NamedTuple):
    """One text of ``embed_texts``: its tokens and their vectors (the mode's array, the token
    axis of length ``len(tokens)`` second to last, as ``embed_sentences`` gives it; without it
    where pooled)."""

    tokens: list[str]
    vectors: np.ndarray


def recorded_tokenizer(options_file: str | os.PathLike) -> TokenizerSpec | None:
    """The tokenizer a model's files say its training text was cut with: the ``tokenizer.json``
    beside its options file, else Moses (``PUBLISHED``) for a published model's options file
    (``elmo_<id>_options.json``), else None.

    Raises:
        ElmoError: a ``tokenizer.json`` that cannot be read.
    """
    path = Path(options_file)
    beside = path.with_name(TOKENIZER_FILE)
    if beside.is_file():
        try:
            return TokenizerSpec.load(beside)
        except ValueError as exc:
            raise ElmoError(f"{exc}; remove it, or write it again with export.py") from None
    if path.name in {f"elmo_{model_id}_options.json" for model_id in PUBLISHED_MODELS.values()}:
        return PUBLISHED
    return None


def choose_tokenizer(
    tokenize: str | TokenizerSpec, recorded: TokenizerSpec | None
) -> tuple[TokenizerSpec, str]:
    """The tokenizer ``tokenize`` (one of ``TOKENIZE``, or a spec) names for a model that
    recorded ``recorded``, and why, in words (``the model's``, ``tokenize=moses``, ...).

    Raises:
        ElmoError: an unknown ``tokenize``.
    """
    if isinstance(tokenize, TokenizerSpec):
        return tokenize, "given"
    if tokenize == "auto":
        if recorded is not None:
            return recorded, "the model's tokenizer"
        return AS_GIVEN, "the model recorded no tokenizer, so the text is taken as tokenized"
    if tokenize in ("none", "whitespace"):
        return AS_GIVEN, f"tokenize={tokenize}"
    if tokenize == "moses":
        same = recorded is not None and recorded.name == "moses"
        return (recorded if same else TokenizerSpec("moses")), "tokenize=moses"
    raise ElmoError(f"tokenize={tokenize!r}: use one of {', '.join(TOKENIZE)}")


def describe_tokenizer(spec: TokenizerSpec) -> str:
    """``moses (en, NFC)``, ``whitespace (NFC)``, ``whitespace``: for one-line reports."""
    details = [spec.lang] if spec.name == "moses" else []
    details += [spec.normalize] if spec.normalize else []
    return spec.name + (f" ({', '.join(details)})" if details else "")


@functools.lru_cache(maxsize=8)
def text_tokenizer(spec: TokenizerSpec) -> Callable[[str], list[str]]:
    """``make_tokenizer(spec)``, made once per spec (Moses' takes a while to build)."""
    return make_tokenizer(spec)


class Elmo(nn.Module):
    """ELMo representations of tokenized sentences.

    Args:
        bilm: the trained biLM (stateless, or ``stateful=True`` to carry LSTM state from one
            batch to the next like the original tools; ``warm_start`` picks where sentences
            start, see ``BiLM``).
        num_output_representations: independent ``ScalarMix``es over one biLM pass (e.g. one
            for a model's input and one for its output layer).
        do_layer_norm: layer-normalise each biLM layer inside the mixes.
        l2_coef: L2 penalty on the mix weights; add ``penalty()`` to the loss.
        dropout: applied to each mixed representation in training mode.
        requires_grad: fine-tune the biLM too. Off by default: the biLM is frozen and kept in
            eval mode (no LSTM dropout) whatever ``train()`` says.
        word_vectors: static vectors concatenated after the ELMo vector of each token.
        token_cache: precomputed token embeddings; cached tokens skip the character CNN.
        tokenizer: the tokenizer the biLM's training text was cut with (``embed_texts`` cuts
            raw text alike); None: not recorded. ``from_files``, ``from_pretrained`` and
            ``from_checkpoint`` set it from the model (``recorded_tokenizer``).
    """

    def __init__(
        self,
        bilm: BiLM,
        num_output_representations: int = 1,
        do_layer_norm: bool = False,
        l2_coef: float = 0.0,
        dropout: float = 0.0,
        requires_grad: bool = False,
        word_vectors: WordVectors | None = None,
        token_cache: TokenCache | None = None,
        tokenizer: TokenizerSpec | None = None,
    ) -> None:
        super().__init__()
        self.bilm = bilm
        self.tokenizer = tokenizer
        self._said_whitespace = False  # embed_texts's line about a model without a tokenizer
        self.requires_grad = requires_grad
        for p in self.bilm.parameters():
            p.requires_grad_(requires_grad)
        self.scalar_mixes = nn.ModuleList(
            ScalarMix(bilm.n_representations, do_layer_norm=do_layer_norm, l2_coef=l2_coef)
            for _ in range(num_output_representations)
        )
        self.dropout = nn.Dropout(dropout)
        self.word_vectors = word_vectors
        if token_cache is not None and bilm.char_cnn is None:
            raise ElmoError("a word-input model has no character CNN to cache; pass no token_cache")
        if token_cache is not None and token_cache.max_chars != self.max_chars:
            raise ElmoError(
                f"token cache built for {token_cache.max_chars} characters per token, the model "
                f"uses {self.max_chars}; build the cache from this model"
            )
        self.token_cache = token_cache
        self.train(False)

    @classmethod
    def from_files(
        cls,
        options_file: str | os.PathLike,
        weight_file: str | os.PathLike,
        stateful: bool = False,
        warm_start: bool = True,
        **kwargs,
    ) -> Elmo:
        """Loads an ``options.json`` + weights ``.hdf5`` pair (ours or the original tools').

        ``warm_start=False, stateful=True`` reproduces the original tools' vectors exactly;
        the default (warm start, stateless) gives deterministic vectors whose first tokens are
        as good as the rest (docs/EMBEDDINGS.md).
        """
        bilm = BiLM.from_hdf5(options_file, weight_file, stateful=stateful, warm_start=warm_start)
        kwargs.setdefault("tokenizer", recorded_tokenizer(options_file))
        return cls(bilm, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike,
        weights: str | os.PathLike | None = None,
        stateful: bool = False,
        warm_start: bool = True,
        progress: bool | None = None,
        **kwargs,
    ) -> Elmo:
        """Loads a published model by name, a directory or an options + weights pair of paths or
        URLs, as ``BiLM.from_pretrained``: ``Elmo.from_pretrained("small")`` downloads the
        published small model once into the cache (docs/EMBEDDINGS.md).
        """
        options_file, weight_file = resolve(model, weights, progress=progress)
        return cls.from_files(options_file, weight_file, stateful, warm_start, **kwargs)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        stateful: bool = False,
        warm_start: bool = True,
        **kwargs,
    ) -> Elmo:
        """Loads the biLM of a training checkpoint (``hparams["options"]``, ``bilm.*`` weights).

        Raises:
            CheckpointError: the file is missing, unreadable or not a training checkpoint.
        """
        checkpoint = load_checkpoint(path)
        options = BiLMOptions.from_dict(checkpoint["hyper_parameters"]["options"], str(path))
        vocab = checkpoint["hyper_parameters"]["vocab"] if options.word_inputs else None
        bilm = BiLM(options, stateful=stateful, warm_start=warm_start, vocab=vocab)
        try:
            bilm.load_state_dict(bilm_weights(checkpoint))
        except RuntimeError:
            raise ElmoError(f"{path}: its bilm.* weights do not match its options") from None
        recorded = checkpoint["hyper_parameters"].get("tokenizer")  # older checkpoints: none
        if recorded is not None:
            try:
                recorded = TokenizerSpec.from_dict(dict(recorded), source=f"{path}: tokenizer")
            except ValueError as exc:
                raise ElmoError(str(exc)) from None
        kwargs.setdefault("tokenizer", recorded)
        return cls(bilm, **kwargs)

    @property
    def max_chars(self) -> int:
        return self.bilm.options.max_characters_per_token

    @property
    def device(self) -> torch.device:
        return next(self.bilm.parameters()).device

    @property
    def output_dim(self) -> int:
        """Size of one mixed representation, static vectors included."""
        return self.bilm.output_dim + (self.word_vectors.dim if self.word_vectors else 0)

    def train(self, mode: bool = True) -> Elmo:
        super().train(mode)
        if not self.requires_grad:
            self.bilm.eval()  # a frozen biLM is used as it was evaluated: no dropout
        return self

    def penalty(self) -> torch.Tensor:
        """Sum of the mixes' L2 penalties (zero unless ``l2_coef`` was given)."""
        if not self.scalar_mixes:
            return torch.zeros((), device=self.device)
        return torch.stack([mix.penalty() for mix in self.scalar_mixes]).sum()

    def reset_states(self) -> None:
        """Forgets the carried LSTM state of a stateful biLM."""
        self.bilm.reset_states()

    def bilm_layers(self, char_ids: torch.Tensor) -> dict[str, object]:
        """The biLM's output for (batch, time, max_chars) ids, through the token cache if any."""
        char_ids = char_ids.to(self.device)
        return self.bilm(char_ids, token_cache=self.token_cache)

    def forward(self, sentences: Sequence[Sequence[str]] | torch.Tensor) -> dict[str, object]:
        """Mixed representations for a downstream model.

        Args:
            sentences: tokenized sentences, or their (batch, time, max_chars) ids from
                ``batch_to_ids`` (not with ``word_vectors``, which need the tokens).

        Returns:
            ``"elmo_representations"``: one (batch, time, output_dim) tensor per mix;
            ``"mask"``: (batch, time) bool; ``"layers"``: the biLM's L + 1 (batch, time, D).
        """
        if isinstance(sentences, torch.Tensor):
            if self.word_vectors is not None:
                raise ElmoError("Elmo with word_vectors needs tokenized sentences, not char ids")
            char_ids = sentences
        else:
            char_ids = self.bilm.batch_inputs(sentences)  # word ids for a word-input model
        out = self.bilm_layers(char_ids)
        layers, mask = out["layers"], out["mask"]
        reps = [self.dropout(mix(layers, mask)) for mix in self.scalar_mixes]
        if self.word_vectors is not None:
            static = self._static(sentences, mask.shape[1])  # (batch, time, static dim)
            reps = [torch.cat([r, static.to(r)], dim=-1) for r in reps]
        return {"elmo_representations": reps, "mask": mask, "layers": layers}

    def _static(self, sentences: Sequence[Sequence[str]], time: int) -> torch.Tensor:
        out = np.zeros((len(sentences), time, self.word_vectors.dim), dtype=np.float32)
        for row, tokens in enumerate(sentences):
            out[row, : len(tokens)] = self.word_vectors.embed(tokens)
        return torch.from_numpy(out)

    @torch.no_grad()
    def embed_sentences(
        self,
        sentences: Sequence[Sequence[str]],
        mode: str = "average",
        batch_size: int = 64,
        pool: str = "none",
    ) -> list[np.ndarray]:
        """Embeds tokenized sentences, one float32 array per sentence, in the input order.

        Sentences are batched by length (fewer padded steps). A stateful biLM instead runs them
        in the given order, ``batch_size`` at a time, so row r of each batch carries on from row
        r of the one before, as in the original tools. Empty sentences give arrays with 0 tokens.

        Args:
            sentences: lists of tokens, without ``<S>``/``</S>``.
            mode: one of ``MODES``; static word vectors are appended to every mode but ``all``.
            batch_size: sentences per biLM call.
            pool: ``none`` (one vector per token), or ``mean``/``max`` over each sentence's
                tokens (``elmo_lm.embedding.pooling``): the mode's array without its token axis,
                (D,) or (L + 1, D) for ``all``; zeros for an empty sentence.
        """
        check_pool(pool)
        if mode not in MODES:
            raise ElmoError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        if mode == "mix" and not self.scalar_mixes:
            raise ElmoError("mode 'mix' needs num_output_representations >= 1")
        if mode == "all" and self.word_vectors is not None:
            raise ElmoError(
                "mode 'all' returns the biLM layers alone; pick another mode to append word vectors"
            )
        if isinstance(sentences, str) or any(isinstance(s, str) for s in sentences):
            raise ElmoError("embed_sentences needs tokenized sentences: a list of lists of tokens")
        was_training = self.training
        self.eval()
        results: list[np.ndarray | None] = [None] * len(sentences)
        nonempty = [i for i, s in enumerate(sentences) if len(s) > 0]
        if not self.bilm.stateful:
            nonempty.sort(key=lambda i: len(sentences[i]))
        for start in range(0, len(nonempty), batch_size):
            index = nonempty[start : start + batch_size]
            batch = [list(sentences[i]) for i in index]
            out = self.bilm_layers(self.bilm.batch_inputs(batch))
            stacked = torch.stack(out["layers"])  # (L + 1, batch, time, D)
            if mode == "mix":
                stacked = self.scalar_mixes[0](out["layers"], out["mask"]).unsqueeze(0)
            stacked = stacked.float().cpu().numpy()
            for row, i in enumerate(index):
                results[i] = self._select(stacked[:, row, : len(sentences[i])], mode, sentences[i])
        empty_layers = np.zeros(
            (self.bilm.n_representations, 0, self.bilm.output_dim), dtype=np.float32
        )
        for i, s in enumerate(sentences):
            if len(s) == 0:
                results[i] = self._select(empty_layers, mode, s)
        self.train(was_training)
        return [pool_tokens(r, pool) for r in results]

    def embed_sentence(
        self, tokens: Sequence[str], mode: str = "average", pool: str = "none"
    ) -> np.ndarray:
        """``embed_sentences`` for one sentence."""
        return self.embed_sentences([tokens], mode=mode, pool=pool)[0]

    def text_tokenizer(
        self, tokenize: str | TokenizerSpec = "auto"
    ) -> tuple[TokenizerSpec, Callable[[str], list[str]]]:
        """The tokenizer ``tokenize`` names for this model (``choose_tokenizer``) and the
        function that cuts one text with it; ``auto`` for a model that recorded none logs once
        that it splits on whitespace."""
        spec, why = choose_tokenizer(tokenize, self.tokenizer)
        if tokenize == "auto" and self.tokenizer is None and not self._said_whitespace:
            log.warning(
                "%s: splitting the texts on whitespace; pass tokenize='moses' if they are raw",
                why,
            )
            self._said_whitespace = True
        return spec, text_tokenizer(spec)

    def embed_texts(
        self,
        texts: Sequence[str],
        tokenize: str | TokenizerSpec = "auto",
        mode: str = "average",
        batch_size: int = 64,
        pool: str = "none",
    ) -> list[EmbeddedText]:
        """Embeds raw texts, one sentence each, cut into tokens as the model's training text was.

        Args:
            texts: strings, e.g. ``"Hello, world."``.
            tokenize: one of ``TOKENIZE`` or a ``TokenizerSpec``: ``auto`` (the model's
                ``tokenizer``: its ``tokenizer.json``, Moses for the published models; on
                whitespace, said once in the log, for a model that recorded none), ``none`` or
                ``whitespace`` (tokenized already), ``moses``.
            mode, batch_size, pool: as in ``embed_sentences``.

        Returns:
            Per text, in the input order, its tokens and their vectors (``EmbeddedText``;
            ``embed_sentences`` of the tokens): ``"Hello, world."`` -> ``["Hello", ",",
            "world", "."]`` and a (4, D) array with ``mode="average"``.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ElmoError(
                "embed_texts needs a list of strings (raw texts); embed_sentences takes "
                "tokenized sentences"
            )
        _, cut = self.text_tokenizer(tokenize)
        tokens = [cut(text) for text in texts]
        vectors = self.embed_sentences(tokens, mode=mode, batch_size=batch_size, pool=pool)
        return [EmbeddedText(t, v) for t, v in zip(tokens, vectors, strict=True)]

    def _select(self, layers: np.ndarray, mode: str, tokens: Sequence[str]) -> np.ndarray:
        """(L + 1, n, D) of one sentence (or (1, n, D) for ``mix``) -> the mode's array."""
        if mode == "all":
            return np.ascontiguousarray(layers)
        if mode == "concat":
            out = np.concatenate(list(layers), axis=-1)  # (n, (L + 1) * D)
        elif mode == "average":
            out = layers.mean(axis=0)
        else:  # top, or the mix computed by the caller
            out = layers[-1]
        if self.word_vectors is not None:
            out = np.concatenate([out, self.word_vectors.embed(tokens)], axis=-1)
        return np.ascontiguousarray(out, dtype=np.float32)
