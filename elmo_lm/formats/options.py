"""The options of a biLM, mirroring the original ``options.json`` field for field.

The original trainer trains more than the character biLM, and so do these options: without a
``char_cnn`` section the LM reads words through an embedding of ``n_tokens_vocab x
projection_dim`` (``word_inputs``), which ``share_embedding_softmax`` ties to the softmax;
``bidirectional: false`` is a forward LM alone; ``sample_softmax: false`` trains with the full
softmax. A key the original reads with a default of its own is read as it reads it
(``ORIGINAL_READINGS``: a missing ``n_highway`` is no highway, a missing clip no clipping), but
for ``bidirectional``: its inference code always builds both directions, so an
``options.json`` without the key is a biLM here too.
"""

from __future__ import annotations

import difflib
import json
import os
import types
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from elmo_lm.errors import UserError
from elmo_lm.formats.atomic import write_text


class OptionsError(UserError):
    """An ``options.json`` that cannot describe a biLM."""


@dataclass
class CharEmbeddingOptions:
    dim: int = 16
    """Size of each character's embedding."""


@dataclass
class CharCNNOptions:
    activation: str = "relu"
    """Applied after the max over character positions: ``relu`` or ``tanh``."""
    embedding: CharEmbeddingOptions = field(default_factory=CharEmbeddingOptions)
    filters: list[list[int]] = field(
        default_factory=lambda: [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]
    )
    """``[width, n_filters]`` pairs of the character convolutions."""
    n_highway: int = 2
    """Number of highway layers after the convolutions."""
    max_characters_per_token: int = 50
    """Character ids per token, including begin/end-of-word markers."""
    n_characters: int = 262
    """261 while training, 262 in an exported file (an extra padding id); both load."""


@dataclass
class LSTMOptions:
    dim: int = 4096
    """LSTM cells per layer and direction."""
    projection_dim: int = 512
    """Size of the projected LSTM output, and of the token embedding."""
    n_layers: int = 2
    cell_clip: float | None = 3.0
    """Cell values are clipped to [-cell_clip, cell_clip]; ``None`` for no clipping."""
    proj_clip: float | None = 3.0
    """Projected outputs are clipped to [-proj_clip, proj_clip]; ``None`` for no clipping."""
    use_skip_connections: bool = True
    """Layers after the first add their input to their output."""


@dataclass
class BiLMOptions:
    """Everything ``options.json`` holds. Readers need only ``lstm`` and ``char_cnn``."""

    lstm: LSTMOptions = field(default_factory=LSTMOptions)
    char_cnn: CharCNNOptions | None = field(default_factory=CharCNNOptions)
    """The character CNN; None (no ``char_cnn`` in ``options.json``): word inputs."""
    bidirectional: bool = True
    """False: a forward LM alone (the original's ``bidirectional: false``)."""
    share_embedding_softmax: bool = False
    """Word inputs only: the softmax weights are the input embedding (one matrix)."""
    sample_softmax: bool = True
    """Train with the sampled softmax (``module.softmax=auto`` or ``sampled``); false: the
    full softmax (``module.softmax=full``). A run records the softmax it trained with here."""
    dropout: float = 0.1
    """Dropout on each LSTM layer's input and on the top output, while training."""
    n_tokens_vocab: int = 0
    """Size of the softmax vocabulary the model was trained with."""
    unroll_steps: int = 20
    """Tokens per training window (truncated backpropagation through time)."""
    batch_size: int = 128
    """Stream rows per batch and device."""
    n_negative_samples_batch: int = 8192
    """Negatives of the sampled softmax."""
    all_clip_norm_val: float = 10.0
    """Gradients are clipped to this global norm."""
    n_epochs: int = 10
    n_train_tokens: int = 0
    """Tokens in the training corpus (counted, never assumed)."""

    @property
    def word_inputs(self) -> bool:
        """Whether the LM reads words (an embedding), not characters (no ``char_cnn``)."""
        return self.char_cnn is None

    @property
    def n_directions(self) -> int:
        """2 for a biLM, 1 for a forward LM alone."""
        return 2 if self.bidirectional else 1

    @property
    def max_characters_per_token(self) -> int:
        """The char CNN's ``max_characters_per_token``; for word inputs the default (what the
        inference API's char ids of their sentences are built with)."""
        return self.char_cnn.max_characters_per_token if self.char_cnn else 50

    @property
    def loader_characters(self) -> int | None:
        """The char ids per token the training and held-out loaders build: None for word
        inputs, whose batches carry vocabulary ids alone (no char ids, no distinct tokens)."""
        return None if self.word_inputs else self.max_characters_per_token

    @property
    def n_filters(self) -> int:
        """Total number of character filters (the width of the highway layers); 0 for words."""
        return sum(n for _, n in self.char_cnn.filters) if self.char_cnn else 0

    @property
    def cnn_projection(self) -> bool:
        """Whether the token embedding has a projection (``CNN_proj``): as in the original
        tools, only when the filters total more than ``projection_dim`` (never for words)."""
        return not self.word_inputs and self.n_filters != self.lstm.projection_dim

    @property
    def lstm_projection(self) -> bool:
        """Whether the LSTM cells project their output (``W_P_0``): as in the original tools,
        only when ``projection_dim`` is smaller than ``lstm.dim``."""
        return self.lstm.projection_dim != self.lstm.dim

    def to_dict(self) -> dict[str, Any]:
        """The ``options.json`` object; word inputs have no ``char_cnn`` key (as the original
        tells them apart)."""
        data = asdict(self)
        if self.char_cnn is None:
            del data["char_cnn"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "options") -> BiLMOptions:
        """Builds options from a parsed ``options.json``.

        Every key is checked: a field of these options, or one the original trainer reads that
        elmo_lm does not (``ORIGINAL_ONLY``, accepted and not kept); each value of its type
        (a number field takes an integer too). No ``char_cnn``: word inputs. A missing key of
        ``ORIGINAL_READINGS`` takes the original's value, not the field's default.

        Raises:
            OptionsError: one line naming the key (and the nearest known one), or the key, the
                value and the type it must have.
        """
        _check_section(data, cls, "", source)
        try:
            lstm = _build(LSTMOptions, _original_readings("lstm", data["lstm"]))
            char_cnn = None
            if "char_cnn" in data:
                cnn = _original_readings("char_cnn", data["char_cnn"])
                embedding = _build(CharEmbeddingOptions, cnn.pop("embedding", {}))
                char_cnn = _build(CharCNNOptions, cnn)
                char_cnn.embedding = embedding
        except KeyError as exc:
            raise OptionsError(
                f"{source}: missing key {exc.args[0]!r}; an options.json needs 'lstm' (and "
                "'char_cnn' for character inputs)"
            ) from None
        except TypeError as exc:
            raise OptionsError(f"{source}: {exc}") from None
        top = {k: v for k, v in data.items() if k not in ("lstm", "char_cnn")}
        options = _build(cls, top)
        options.lstm, options.char_cnn = lstm, char_cnn
        options.validate(source)
        return options

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> BiLMOptions:
        path = Path(path)
        if not path.is_file():
            raise OptionsError(
                f"{path}: options file not found; pass the options.json written beside the weights file"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise OptionsError(f"{path}: not a valid JSON options file ({exc})") from None
        return cls.from_dict(data, source=str(path))

    def save_json(self, path: str | os.PathLike) -> None:
        """Writes ``options.json`` (via a temporary name, so no half file is left behind)."""
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def validate(self, source: str = "options") -> None:
        """Raises ``OptionsError`` (one line) for options no biLM can have."""
        lstm = self.lstm
        if lstm.n_layers < 1 or lstm.dim < 1 or lstm.projection_dim < 1:
            raise OptionsError(
                f"{source}: lstm.n_layers, lstm.dim and lstm.projection_dim must be positive"
            )
        if lstm.dim < lstm.projection_dim:
            raise OptionsError(
                f"{source}: lstm.dim {lstm.dim} is smaller than lstm.projection_dim "
                f"{lstm.projection_dim}; use a projection_dim of at most dim"
            )
        if self.char_cnn is None:
            return
        if self.share_embedding_softmax:
            raise OptionsError(
                f"{source}: share_embedding_softmax ties the softmax to a word embedding, and "
                "these options read characters (char_cnn); drop one of them"
            )
        self._validate_char_cnn(source)

    def _validate_char_cnn(self, source: str) -> None:
        cnn, lstm = self.char_cnn, self.lstm
        if cnn.activation not in ("relu", "tanh"):
            raise OptionsError(
                f"{source}: char_cnn.activation is {cnn.activation!r}; use 'relu' or 'tanh'"
            )
        if cnn.n_characters not in (261, 262):
            raise OptionsError(
                f"{source}: char_cnn.n_characters is {cnn.n_characters}; use 261 or 262"
            )
        if not cnn.filters or any(len(f) != 2 or f[0] < 1 or f[1] < 1 for f in cnn.filters):
            raise OptionsError(
                f"{source}: char_cnn.filters must be a non-empty list of [width, n_filters] pairs"
            )
        if max(w for w, _ in cnn.filters) > cnn.max_characters_per_token:
            raise OptionsError(f"{source}: a filter is wider than max_characters_per_token")
        if cnn.max_characters_per_token < 3:
            raise OptionsError(f"{source}: max_characters_per_token must be at least 3")
        # The original tools build no projection when the sizes agree and cannot project up.
        if self.n_filters < lstm.projection_dim:
            raise OptionsError(
                f"{source}: char_cnn.filters total {self.n_filters}, fewer than lstm.projection_dim "
                f"{lstm.projection_dim}; use filters totalling at least projection_dim"
            )


@dataclass(frozen=True)
class RunOption:
    """An option that records how a model was trained rather than its shape, and where a
    training run takes it from: a key of the run's config, or what the run counts."""

    key: str
    """The ``options.json`` key (a field of ``BiLMOptions``)."""
    config: str | None = None
    """The config key it is read from (``data.batch_size``); None when the run counts it."""
    counted: str | None = None
    """What the run counts it from (``the training corpus``), when no config key gives it."""

    @property
    def source(self) -> str:
        """Where a run takes it from, as a message names it."""
        return self.config or self.counted or ""

    @property
    def module_key(self) -> str | None:
        """Its key in the ``module`` config (``clip_norm``), where it is one. ``ElmoLM`` takes
        it in ``options``, not as an argument; checkpoints written before kept it as an
        argument too, under this name (``elmo_lm.formats.checkpoint`` moves it)."""
        group, _, name = (self.config or "").partition(".")
        return name if group == "module" else None


RUN_OPTIONS = (
    RunOption("n_tokens_vocab", counted="the vocabulary's size"),
    RunOption("unroll_steps", config="data.unroll_steps"),
    RunOption("batch_size", config="data.batch_size"),
    RunOption("n_negative_samples_batch", config="module.n_negative_samples"),
    RunOption("all_clip_norm_val", config="module.clip_norm"),
    RunOption("n_epochs", config="trainer.max_epochs"),
    RunOption("n_train_tokens", counted="the training corpus"),
)
"""The one table of the options a run sets (``elmo_lm.training.config.run_options``), of the
``module`` config keys that are options, not ``ElmoLM`` arguments, and of the arguments that
earlier checkpoints kept beside their options. Every other field of ``BiLMOptions`` comes
from the model config (``conf/model``: the biLM's shape and dropout)."""


ORIGINAL_ONLY = {"learning_rate": float}
"""Keys of ``options.json`` that the original trainer reads (``bilm/training.py``) and elmo_lm
does not: accepted and type-checked, not kept. Its config gives them: ``module.lr``."""

ORIGINAL_READINGS: dict[str, dict[str, Any]] = {
    "lstm": {"cell_clip": None, "proj_clip": None, "n_layers": 1, "use_skip_connections": False},
    "char_cnn": {"n_highway": 0},
}
"""What the original's code reads where ``options.json`` leaves a key out (``bilm/training.py``,
``bilm/model.py``: ``.get('cell_clip')`` is no clipping, ``.get('n_highway')`` no highway,
``.get('n_layers', 1)`` one layer, ``.get('use_skip_connections')`` none), where the field's
default (for a config that builds options field by field) is another."""


def _original_readings(section: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` of an ``options.json`` section with the original's readings of missing keys."""
    return {**ORIGINAL_READINGS[section], **data}


_EXPECTED = {"char_cnn.filters": "a list of [width, n_filters] pairs of integers"}


@cache
def _schema(cls) -> dict[str, Any]:
    """The keys of a section of ``options.json`` and their types."""
    hints = get_type_hints(cls)
    # A section that may be absent (``char_cnn``: word inputs) is checked as its dataclass.
    sections = {
        name: next(h for h in get_args(hint) if is_dataclass(h))
        for name, hint in hints.items()
        if isinstance(hint, types.UnionType) and any(is_dataclass(h) for h in get_args(hint))
    }
    hints.update(sections)
    return {f.name: hints[f.name] for f in fields(cls)} | (
        ORIGINAL_ONLY if cls is BiLMOptions else {}
    )


@cache
def _all_keys(cls=None, prefix: str = "") -> tuple[str, ...]:
    """Every dotted key of ``options.json`` that holds a value (``lstm.cell_clip``), for the
    nearest to a typo."""
    keys: list[str] = []
    for name, hint in _schema(cls or BiLMOptions).items():
        keys += _all_keys(hint, f"{prefix}{name}.") if is_dataclass(hint) else [prefix + name]
    return tuple(keys)


def _check_section(data: Any, cls, prefix: str, source: str) -> None:
    if not isinstance(data, dict):
        if not prefix:
            raise OptionsError(
                f"{source}: holds {_show(data)}; an options.json is an object with "
                "'lstm' and 'char_cnn'"
            )
        raise OptionsError(f"{source}: {prefix[:-1]} is {_show(data)}; it must be an object")
    schema = _schema(cls)
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in schema:
            nearest = _nearest(key, prefix, schema)
            hint = (
                f"did you mean {nearest}?"
                if nearest
                else f"the keys of {prefix[:-1] or 'the top level'} are {', '.join(sorted(schema))}"
            )
            raise OptionsError(f"{source}: unknown key {name}; {hint}")
        if is_dataclass(schema[key]) and value is None:
            raise OptionsError(
                f"{source}: {name} is null; leave the key out for a model without it "
                "(no char_cnn: word inputs)"
            )
        if is_dataclass(schema[key]):
            _check_section(value, schema[key], f"{name}.", source)
        elif not _fits(value, schema[key]):
            expected = _EXPECTED.get(name) or _describe(schema[key])
            raise OptionsError(f"{source}: {name} is {_show(value)}; it must be {expected}")


def _nearest(key: str, prefix: str, schema: dict[str, Any]) -> str | None:
    """The known key nearest to ``key``: in its own section, else anywhere (a key put in the
    wrong section)."""
    here = [name for name, hint in schema.items() if not is_dataclass(hint)]
    nearest = difflib.get_close_matches(key, here, n=1)
    if nearest:
        return prefix + nearest[0]
    anywhere = {k.rpartition(".")[2]: k for k in reversed(_all_keys())}
    nearest = difflib.get_close_matches(key, list(anywhere), n=1)
    return anywhere[nearest[0]] if nearest else None


def _fits(value: Any, hint) -> bool:
    if hint is bool or hint is str:
        return isinstance(value, hint)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    if isinstance(hint, types.UnionType):
        return any(_fits(value, h) for h in get_args(hint))
    if get_origin(hint) is list:
        return isinstance(value, list) and all(_fits(v, get_args(hint)[0]) for v in value)
    raise TypeError(f"options: no check for the type {hint}")


def _describe(hint) -> str:
    """The type a key must have, as a message says it."""
    if isinstance(hint, types.UnionType):
        return " or ".join(_describe(h) for h in get_args(hint))
    if get_origin(hint) is list:
        return f"a list of {_describe(get_args(hint)[0]).removeprefix('a ')}s"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, "null")


def _show(value: Any) -> str:
    """A value as ``options.json`` writes it, and what it is: ``"256" (a string)``."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kinds = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    kind = kinds.get(type(value)) or ("a list" if isinstance(value, list | tuple) else None)
    kind = kind or ("an object" if isinstance(value, dict) else type(value).__name__)
    return text if value is None else f"{text} ({kind})"


def _build(cls, data: dict[str, Any]):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
