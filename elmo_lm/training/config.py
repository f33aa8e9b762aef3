"""From the composed config of ``conf/train.yaml`` to a run's options, built in one place.

``conf/model/*.yaml`` mirrors ``options.json`` (``lstm``, ``char_cnn``, ``dropout``), so a
published ``options.json`` is a model config as it is. The keys that record how a model was
trained (``batch_size``, ``n_train_tokens``, ...) come from the run: ``run_options`` sets them,
as ``elmo_lm.formats.options.RUN_OPTIONS`` says.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from elmo_lm.errors import TrainingError
from elmo_lm.formats.options import (
    RUN_OPTIONS,
    BiLMOptions,
    CharCNNOptions,
    CharEmbeddingOptions,
    LSTMOptions,
)

log = logging.getLogger(__name__)

RENAMED = {
    "model.lstm_dim": "model.lstm.dim",
    "model.projection_dim": "model.lstm.projection_dim",
    "model.n_layers": "model.lstm.n_layers",
    "model.cell_clip": "model.lstm.cell_clip",
    "model.proj_clip": "model.lstm.proj_clip",
    "model.use_skip_connections": "model.lstm.use_skip_connections",
    "model.char_dim": "model.char_cnn.embedding.dim",
    "model.filters": "model.char_cnn.filters",
    "model.n_highway": "model.char_cnn.n_highway",
    "model.activation": "model.char_cnn.activation",
    "data.max_characters_per_token": "model.char_cnn.max_characters_per_token",
    "data.max_valid_sentence_tokens": None,  # held-out text is read as streams: no cap
}
"""Keys of earlier configs and the key that replaced them (None: no longer used)."""

MOVED_TARGETS = {
    "elmo_lm.lightning_module.ElmoLM": "elmo_lm.training.module.ElmoLM",
    "elmo_lm.datamodule.ElmoDataModule": "elmo_lm.data.datamodule.ElmoDataModule",
    "elmo_lm.callbacks.ModelSummary": "elmo_lm.training.callbacks.ModelSummary",
    "elmo_lm.callbacks.ProgressBar": "elmo_lm.training.callbacks.ProgressBar",
    "elmo_lm.callbacks.MetricsFile": "elmo_lm.training.callbacks.MetricsFile",
    "elmo_lm.training.CheckRunDir": "elmo_lm.training.run.CheckRunDir",
}
"""The ``_target_``s that configs saved before the package's subfolders (a run's
``.hydra/config.yaml``) name, and where those classes live now."""


def current_targets(cfg: DictConfig) -> DictConfig:
    """``cfg`` with every ``_target_`` of ``MOVED_TARGETS`` replaced by its current path, so a
    config saved by an earlier run (``--config-dir <run>/.hydra --config-name config``)
    instantiates and resumes as it did."""

    def visit(node) -> None:
        if isinstance(node, DictConfig):
            target = node.get("_target_") if "_target_" in node else None
            if isinstance(target, str) and target in MOVED_TARGETS:
                node["_target_"] = MOVED_TARGETS[target]
            for key in node:
                if not OmegaConf.is_missing(node, key) and not _is_interpolation(node, key):
                    visit(node[key])
        elif OmegaConf.is_list(node):
            for i in range(len(node)):
                if not _is_interpolation(node, i):
                    visit(node[i])

    with_flags = OmegaConf.is_readonly(cfg), OmegaConf.is_struct(cfg)
    OmegaConf.set_readonly(cfg, False)
    visit(cfg)
    OmegaConf.set_readonly(cfg, with_flags[0])
    return cfg


def _is_interpolation(node, key) -> bool:
    return OmegaConf.is_interpolation(node, key)


RUN_KEYS = {option.key: option.source for option in RUN_OPTIONS}
"""The options that record how a model was trained, and where a run takes them from."""

MODULE_OPTIONS = {o.module_key: o.key for o in RUN_OPTIONS if o.module_key is not None}
"""Keys of ``module`` that are options (``options.json`` records them), not ``ElmoLM`` arguments."""


def renamed_message(key: str) -> str:
    new = RENAMED[key]
    if new is None:
        return f"{key}: no longer used; remove it"
    return f"{key}: renamed {new} (conf/model mirrors options.json); pass {new}=..."


def check_overrides(argv: list[str]) -> None:
    """Refuses command-line overrides of renamed keys, before Hydra composes anything.

    Raises:
        TrainingError: e.g. ``model.lstm_dim: renamed model.lstm.dim ...``.
    """
    for arg in argv:
        key = override_key(arg)
        if key in RENAMED:
            raise TrainingError(renamed_message(key))


GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic"


def check_composes(argv: list[str], config_dir: Path) -> None:
    """Composes ``conf/train.yaml`` with the overrides ``argv`` as ``hydra.main`` will, so that
    Hydra's own errors (a misspelt key, a missing group option, bad syntax) are one line that
    says what to fix. Hydra's flags (``--multirun``...) and ``HYDRA_FULL_ERROR=1`` leave the
    command line to Hydra, with its full output.

    Raises:
        TrainingError: e.g. ``trainer.max_epoch=1: no key trainer.max_epoch in the config; did
            you mean trainer.max_epochs? (+trainer.max_epoch=1 to add one)``.
    """
    if any(a.startswith("-") for a in argv) or os.environ.get("HYDRA_FULL_ERROR") == "1":
        return
    try:
        _compose(config_dir, argv)
    except (HydraException, OmegaConfBaseException) as exc:
        raise TrainingError(composition_message(exc, argv, config_dir)) from None


def composition_message(exc: Exception, argv: list[str], config_dir: Path) -> str:
    """The one line of a Hydra composition error: the override, what is wrong and the fix."""
    text = str(exc).strip()
    first = text.split("\n")[0]
    if isinstance(exc, OverrideParseException):
        why = exc.message.split("\n")[0]
        return (
            f"{exc.override}: not an override ({why}); quote a value that holds brackets, "
            f"commas or spaces: key='...' ({GRAMMAR})"
        )
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, name = exc.missing_cfg_file.rpartition("/")
        options = exc.options or sorted(p.stem for p in (config_dir / group).glob("*.yaml"))
        given = _override_of(argv, group) or f"{group}={name}"
        if not group or not (config_dir / group).is_dir():
            groups = ", ".join(_groups(config_dir))
            return f"{given}: no config group {group or name} in conf/; one of {groups}"
        return f"{given}: no conf/{group}/{name}.yaml; use one of {', '.join(options)}"
    found = re.match(r"Could not (override|delete from config\.) '?([^' ]+)'", first)
    if found:
        key = found.group(2) if found.group(1) == "override" else re.findall(r"'([^']+)'", first)[0]
        given = _override_of(argv, key) or key
        near = _nearest(key, [a for a in argv if override_key(a) != key], config_dir)
        hint = f"did you mean {near}? " if near else ""
        add = f" (+{given.lstrip('+~')} to add one)" if "=" in given else " (nothing to delete)"
        return f"{given}: no key {key} in the config; {hint}".rstrip("; ") + add
    found = re.match(r"Could not append to config\. An item is already at '([^']+)'", first)
    if found:
        key = found.group(1)
        given = _override_of(argv, key) or key
        bare = given.lstrip("+")
        return (
            f"{given}: {key} is already in the config; pass {bare} to change it "
            f"(++{bare} to set it either way)"
        )
    found = re.match(r"Ambiguous value for argument '([^']+)'", first)
    if found:
        key, _, value = found.group(1).partition("=")
        return (
            f"{found.group(1)}: a comma makes a sweep; pass {key}=[{value}] for a list, "
            f"{key}='{value}' for a string, or add --multirun to sweep"
        )
    return f"{' '.join(argv)}: {first}"


def _compose(config_dir: Path, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def override_key(override: str) -> str:
    """The key a command-line override sets (``+a.b=1``, ``~a.b``: ``a.b``)."""
    return override.partition("=")[0].lstrip("+~")


def _override_of(argv: list[str], key: str) -> str | None:
    given = [a for a in argv if override_key(a) == key]
    return given[-1] if given else None


def _groups(config_dir: Path) -> list[str]:
    return sorted(p.name for p in Path(config_dir).iterdir() if p.is_dir())


def _nearest(key: str, others: list[str], config_dir: Path) -> str | None:
    """The key of the config composed from ``others`` (else the defaults) nearest to ``key``."""
    for overrides in (others, []):
        try:
            cfg = _compose(config_dir, overrides)
            break
        except (HydraException, OmegaConfBaseException):
            continue
    else:
        return None
    keys: list[str] = []

    def visit(prefix: str, node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                visit(f"{prefix}{k}.", v)
        keys.append(prefix.rstrip("."))

    visit("", OmegaConf.to_container(cfg, resolve=False))
    near = difflib.get_close_matches(key, [k for k in keys if k], n=1, cutoff=0.75)
    return near[0] if near else None


def check_renamed(cfg: DictConfig) -> None:
    """Refuses renamed keys in a composed config (a config file of one's own, ``+key=``)."""
    for key in RENAMED:
        group, _, name = key.partition(".")
        if isinstance(cfg.get(group), Mapping | DictConfig) and name in cfg[group]:
            raise TrainingError(renamed_message(key))


_SECTIONS = {
    "lstm": LSTMOptions,
    "char_cnn": CharCNNOptions,
    "char_cnn.embedding": CharEmbeddingOptions,
}


def model_options(model: Mapping | DictConfig, source: str = "model") -> BiLMOptions:
    """The biLM shape of a model config (``conf/model/*.yaml`` or an ``options.json``).

    Raises:
        TrainingError: a key that options.json does not have (``model.lstm.dimm``).
    """
    if isinstance(model, DictConfig):
        model = OmegaConf.to_container(model, resolve=True)
    for name in model:
        if f"{source}.{name}" in RENAMED:
            raise TrainingError(renamed_message(f"{source}.{name}"))
    _check_keys(model, BiLMOptions, source)
    for section, cls in _SECTIONS.items():
        values = model
        for part in section.split("."):
            values = values.get(part, {}) if isinstance(values, Mapping) else {}
        _check_keys(values, cls, f"{source}.{section}")
    return BiLMOptions.from_dict(model, source=source)


def _check_keys(values: Mapping, cls, where: str) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in values if k not in names)
    if unknown:
        raise TrainingError(
            f"{where}.{unknown[0]}: not an options.json key; use one of {', '.join(sorted(names))}"
        )


def run_options(shape: BiLMOptions, cfg: DictConfig, vocab_size: int, n_train_tokens: int):
    """The options of a run: ``shape``'s biLM, and how this run trains it (``RUN_OPTIONS``:
    from ``cfg``, or the counts given here)."""
    values = {"n_tokens_vocab": vocab_size, "n_train_tokens": n_train_tokens}
    for option in RUN_OPTIONS:
        if option.config is not None:
            values[option.key] = OmegaConf.select(cfg, option.config, throw_on_missing=True)
    missing = {o.key for o in RUN_OPTIONS} - set(values)
    assert not missing, f"run_options: RUN_OPTIONS counts {missing}, which nothing here gives"
    kind = {k: type(v) for k, v in BiLMOptions().to_dict().items()}  # int or float
    return dataclasses.replace(shape, **{k: kind[k](v) for k, v in values.items()})


def module_arguments(cfg: DictConfig) -> DictConfig:
    """``cfg.module`` without the keys that ``run_options`` puts in the options."""
    return OmegaConf.create(
        {
            k: v
            for k, v in OmegaConf.to_container(cfg.module, resolve=True).items()
            if k not in MODULE_OPTIONS
        }
    )


_POSITIVE_INTS = (
    "data.batch_size",
    "data.unroll_steps",
    "data.valid_batch_size",
    "data.vocab_min_count",
    "trainer.log_every_n_steps",
    "module.n_negative_samples",
    "callbacks.periodic.every_n_train_steps",
)
_NON_NEGATIVE_INTS = ("data.num_workers", "data.shuffle_buffer", "trainer.num_sanity_val_steps")
_POSITIVE_NUMBERS = ("module.lr", "module.clip_norm", "trainer.val_check_interval")
_NON_NEGATIVE_NUMBERS = ("module.initial_accumulator_value",)


COMPILE_MODES = ("none", "default", "reduce-overhead")
"""``compile=``: a training window's loss eager, compiled whole, or compiled and captured as
CUDA graphs (``ElmoLM.set_compile``)."""


def check_config(cfg: DictConfig) -> None:
    """Refuses impossible settings before anything is read or built, naming the key.

    Raises:
        TrainingError: e.g. ``data.batch_size=0: must be an integer >= 1``.
    """
    check_renamed(cfg)

    def value(key):
        return OmegaConf.select(cfg, key, default=None)

    def refuse(key, need):
        raise TrainingError(f"{key}={value(key)}: must be {need}")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_number(v):
        return isinstance(v, int | float) and not isinstance(v, bool)

    for key in _POSITIVE_INTS:
        if value(key) is not None and not (is_int(value(key)) and value(key) >= 1):
            refuse(key, "an integer >= 1")
    for key in _NON_NEGATIVE_INTS:
        if value(key) is not None and not (is_int(value(key)) and value(key) >= 0):
            refuse(key, "an integer >= 0")
    for key in _POSITIVE_NUMBERS:
        if value(key) is not None and not (is_number(value(key)) and value(key) > 0):
            refuse(key, "a number > 0")
    for key in _NON_NEGATIVE_NUMBERS:
        if value(key) is not None and not (is_number(value(key)) and value(key) >= 0):
            refuse(key, "a number >= 0")
    chars = value("model.char_cnn.max_characters_per_token")
    if chars is not None and not (is_int(chars) and chars >= 3):
        refuse(
            "model.char_cnn.max_characters_per_token",
            "an integer >= 3 (<bow>, a character, <eow>)",
        )
    size = value("data.vocab_max_size")
    if size is not None and not (is_int(size) and size >= 4):
        refuse("data.vocab_max_size", "null or an integer >= 4 (<S>, </S>, <UNK> and a word)")
    prob = value("module.reset_state_prob")
    if prob is not None and not (is_number(prob) and 0 <= prob <= 1):
        refuse("module.reset_state_prob", "a number in [0, 1]")
    for key in ("trainer.max_epochs", "trainer.max_steps"):
        v = value(key)
        if v is not None and not (is_int(v) and (v >= 1 or v == -1)):
            refuse(key, "an integer >= 1, or -1 for no limit")
    v = value("trainer.limit_train_batches")
    if v is not None and not (is_number(v) and v > 0):
        refuse("trainer.limit_train_batches", "null, a fraction in (0, 1] or a number >= 1")
    v = value("trainer.limit_val_batches")
    if v is not None and not (is_number(v) and v >= 0):
        refuse("trainer.limit_val_batches", "null, 0 (no validation), a fraction or a number")
    if str(value("trainer.precision")) in ("bf16-true", "16-true"):
        raise TrainingError(
            f"trainer.precision={value('trainer.precision')} would keep the weights and "
            "Adagrad's sums of squares in 16 bits, where small updates vanish; use "
            "trainer.precision=bf16-mixed (float32 weights, bf16 products)"
        )
    if value("compile") is not None and value("compile") not in COMPILE_MODES:
        refuse("compile", "one of " + ", ".join(COMPILE_MODES))
