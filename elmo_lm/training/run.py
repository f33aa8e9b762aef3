"""``train(cfg)``: what ``train.py`` does, as a function tests can call.

``cfg`` is the composed Hydra config of ``conf/train.yaml`` (docs/TRAINING_GUIDE.md). The run's
options are built once (``elmo_lm.training.config.run_options``); a resumed run takes them, and the
module's arguments, from its checkpoint (``elmo_lm.formats.checkpoint``).
"""

from __future__ import annotations

import json
import logging
import signal
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback as HydraCallback
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from elmo_lm.cpu import path
from elmo_lm.cpu.allocator import keep_freed_memory
from elmo_lm.data.vocabulary import read_tokens
from elmo_lm.errors import OutputError, TrainingError, os_reason, user_errors
from elmo_lm.formats.atomic import check_writable_dir, write_text
from elmo_lm.formats.checkpoint import load_checkpoint
from elmo_lm.formats.options import RUN_OPTIONS, BiLMOptions
from elmo_lm.formats.pretrained import resolve
from elmo_lm.formats.softmax_file import softmax_file_for, vocab_file_for, warm_softmax
from elmo_lm.formats.tokenize import TokenizerSpec
from elmo_lm.model.bilm import BiLM
from elmo_lm.training.callbacks import MetricsFile, plain_metrics
from elmo_lm.training.checkpointing import AtomicCheckpointIO, resolve_ckpt_path
from elmo_lm.training.config import (
    check_config,
    current_targets,
    model_options,
    module_arguments,
    override_key,
    run_options,
)
from elmo_lm.training.lm_kinds import load_for_fine_tuning
from elmo_lm.training.module import ElmoLM
from elmo_lm.training.resume import quote
from elmo_lm.training.signals import StopOnSignal, Stopped

log = logging.getLogger(__name__)

__all__ = ["train", "user_errors"]


def train(cfg: DictConfig) -> dict[str, float]:
    """Trains (or resumes, or fine-tunes) a biLM as ``cfg`` says; see conf/train.yaml.

    Returns:
        The last logged metrics (``val/ppl`` and friends), also written to
        ``<output_dir>/metrics.json`` by rank 0, with the vocabulary as ``vocab.txt``.
    """
    current_targets(cfg)
    check_config(cfg)
    check_path_setting()
    quiet_libraries()
    process_settings()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.paths.output_dir)
    _check_run_dir(output_dir)
    ckpt_path = resolve_ckpt_path(
        cfg.ckpt_path, Path(cfg.paths.runs_dir), output_dir, cfg.get("name")
    )
    checkpoint = load_checkpoint(ckpt_path) if ckpt_path is not None else None
    init_files = init_from_files(cfg.init_from) if checkpoint is None else None
    if checkpoint is not None:
        shape = BiLMOptions.from_dict(checkpoint["hyper_parameters"]["options"], ckpt_path)
    elif init_files is not None:
        shape = BiLMOptions.from_json(init_files[0])
    else:
        shape = model_options(cfg.model)

    datamodule = instantiate(
        cfg.data,
        max_characters_per_token=shape.loader_characters,
        **corpus_defaults(cfg),
    )
    datamodule.setup("fit")
    vocab = datamodule.vocab
    options = run_options(shape, cfg, len(vocab), datamodule.n_train_tokens)
    if checkpoint is not None:
        check_resume(ckpt_path, checkpoint["hyper_parameters"], options, vocab.tokens)
        module = ElmoLM(**checkpoint["hyper_parameters"])
    else:
        tokenizer = getattr(datamodule, "tokenizer", None)  # a prepared corpus's, else None
        module = build_module(cfg, options, list(vocab.tokens), tokenizer)
        if init_files is not None:
            options_file, weight_file = init_files
            warm = load_for_fine_tuning(
                module.bilm, BiLM.from_hdf5(options_file, weight_file), weight_file
            )
            log.info("fine-tuning the biLM of %s on a vocabulary of %d", weight_file, len(vocab))
            if warm is not None:
                log.info(
                    "word embedding: %d of %d rows warm from %s", warm, len(vocab), weight_file
                )
            if (softmax_file := softmax_file_for(weight_file)) is not None:  # rows by token
                source = read_tokens(vocab_file_for(softmax_file))  # rows in its line order
                warm = warm_softmax(module.softmax, list(vocab.tokens), list(source), softmax_file)
                log.info("softmax: %d of %d rows warm from %s", warm, len(vocab), softmax_file)
    module.set_compile(cfg.get("compile") or "none")
    module.bilm.lstm.bf16_recurrence = bool(cfg.get("bf16_recurrence", False))
    callback_cfgs = [c for c in (cfg.get("callbacks") or {}).values() if c]
    for flag, kind in (
        ("enable_model_summary", "ModelSummary"),
        ("enable_progress_bar", "ProgressBar"),
    ):
        if not cfg.trainer.get(flag, True):  # Lightning refuses the callback with its flag off
            callback_cfgs = [c for c in callback_cfgs if kind not in c.get("_target_", "")]
    if datamodule.valid_files is None:  # nothing to monitor: keep the latest checkpoint only
        callback_cfgs = [
            OmegaConf.merge(c, {"monitor": None})
            if str(c.get("monitor", "")).startswith("val/")
            else c
            for c in callback_cfgs
            if not str(c.get("_target_", "")).endswith("EarlyStopping")
        ]
        log.info("no data.valid_files: no validation, checkpoints are not ranked by val/ppl")
    callbacks = [instantiate(c) for c in callback_cfgs]
    callbacks.append(MetricsFile(output_dir / "metrics.json"))
    callbacks.append(StopOnSignal(output_dir / "checkpoints"))
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    checkpoint_io = AtomicCheckpointIO()
    plugins = [*(instantiate(cfg.trainer.get("plugins")) or []), checkpoint_io]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger, plugins=plugins)
    # Before DDP starts its ranks: every rank would meet it, one in its data stream.
    check_shards(datamodule, trainer.world_size, trainer.num_nodes)
    # A resumed run's callbacks keep the checkpoint's callback states, also after their settings
    # changed (callbacks.keep_callback_states).
    checkpoint_io.trainer = trainer
    if trainer.is_global_zero:
        # Written now, so that a killed run can be resumed with data.vocab_file=<run>/vocab.txt.
        vocab.save(output_dir / "vocab.txt")
        log.info("run directory: %s", output_dir)
    # ElmoDataModule continues a restored epoch where it stopped (ElmoDataModule._resume_position).
    warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
    # A resumed run writes into its own checkpoints/ (elmo_lm.training.resume).
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty")
    # The streams' length is exact per rank and worker (TrainStream.steps_per_epoch).
    warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except Stopped as stop:
        _summarize(trainer, output_dir, str(stop))
        raise
    except SIGTERMException:  # Lightning's, outside a training step (in validation)
        _summarize(trainer, output_dir, "stopped by SIGTERM outside a training step: unsaved")
        raise SystemExit(128 + signal.SIGTERM) from None

    metrics = plain_metrics(trainer)
    if trainer.is_global_zero:
        write_text(output_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    _summarize(trainer, output_dir)
    return metrics


def _summarize(trainer: L.Trainer, output_dir: Path, stopped: str | None = None) -> None:
    if trainer.is_global_zero:
        for line in run_summary(trainer, output_dir, plain_metrics(trainer), stopped):
            log.info(line)


def build_module(
    cfg: DictConfig, options: BiLMOptions, tokens: list[str], tokenizer: TokenizerSpec | None = None
) -> ElmoLM:
    """The ``module`` of ``cfg`` over ``tokens``: the config is instantiated as a partial and
    called with the options and the vocabulary, so that corpus text (``${HOME}``, ``${``, junk)
    never passes through OmegaConf, which would read it as an interpolation. ``tokenizer``
    (the corpus's) is recorded in the module's hyperparameters."""
    try:
        make = instantiate(module_arguments(cfg), _partial_=True, _convert_="all")
    except InstantiationException as exc:
        raise TrainingError(f"module: {exc.__cause__ or exc}") from None
    recorded = tokenizer.to_dict() if tokenizer is not None else None
    try:
        return make(options=options.to_dict(), vocab=list(tokens), tokenizer=recorded)
    except ValueError as exc:  # ElmoLM's only for what the config asks (softmax, options)
        raise TrainingError(str(exc)) from None


CORPUS_KEYS = ("train_files", "valid_files", "vocab_file")
"""What ``data.corpus``'s corpus.json gives unless the command line gives it too."""


def corpus_defaults(cfg: DictConfig) -> dict[str, None]:
    """With ``data.corpus``: None for each of ``CORPUS_KEYS`` that the command line (Hydra's
    record of it, or ``cfg.hydra`` where composed with it) does not give, so that the corpus's
    files replace the data config's defaults (``conf/data/sample.yaml``'s bundled corpus).
    Without a record of the command line (a config composed by hand), the corpus gives all."""
    if not cfg.data.get("corpus"):
        return {}
    overrides = OmegaConf.select(cfg, "hydra.overrides.task", default=None)
    if overrides is None and HydraConfig.initialized():
        overrides = HydraConfig.get().overrides.task
    given = {override_key(str(a)) for a in overrides or []}
    return {k: None for k in CORPUS_KEYS if f"data.{k}" not in given}


def check_shards(datamodule, world_size: int, num_nodes: int = 1) -> None:
    """Every data-loader worker of every rank reads its own share of the training sentences
    (``elmo_lm.data.sharding``): refuses a corpus of fewer sentences than shares, naming the
    setting to lower.

    Raises:
        TrainingError: e.g. ``train.txt: 2 sentences for 3 ranks ...; use trainer.devices=2``.
    """
    n = datamodule.train_stats.n_sentences
    workers = max(1, datamodule.num_workers)
    if n >= world_size * workers:
        return
    files = datamodule.train_files
    where = files if isinstance(files, str) else files[0] + (" ..." if len(files) > 1 else "")
    ranks = f"{world_size} rank{'s' if world_size > 1 else ''}"
    if num_nodes > 1:
        ranks += f" (trainer.devices={world_size // num_nodes} x trainer.num_nodes={num_nodes})"
    if workers == 1:
        shares, fix = ranks, f"trainer.devices={n // num_nodes} or fewer"
    elif world_size == 1:
        shares, fix = f"{workers} data-loader workers", f"data.num_workers={n} or fewer"
    else:
        shares = f"{world_size * workers} shares ({ranks} x {workers} data-loader workers)"
        fix = f"fewer trainer.devices or data.num_workers (ranks x workers <= {n})"
    fix = f"{fix}, or a larger corpus" if n // num_nodes else "a larger corpus"
    raise TrainingError(
        f"{where}: {n} training sentences for {shares}, each of which reads its own; use {fix}"
    )


def check_path_setting() -> None:
    """``ELMO_LM_PATH`` names a path (``elmo_lm.cpu.path``): one line before any work, not a
    ``ValueError`` from the first forward pass.

    Raises:
        TrainingError: e.g. ``ELMO_LM_PATH='gpu' is not a path; use one of auto, ...``.
    """
    try:
        path.chosen()
    except ValueError as exc:
        raise TrainingError(str(exc)) from None


def process_settings() -> None:
    """The process-wide settings of a training process, set once at its start: every rank
    calls ``train`` (DDP's ranks re-run train.py), so every rank takes them.

    Freed memory stays in the process for the next step's buffers (``keep_freed_memory``);
    sparse tensors are built unchecked, as torch's default, but said explicitly: RowAdagrad
    builds them from the softmax rows, and torch warns about invariants left unchecked
    implicitly; float32 products may use TF32 on a GPU.
    """
    keep_freed_memory()
    torch.sparse.check_sparse_tensor_invariants.disable()
    if torch.cuda.is_available():
        path.allow_tf32("cuda")


_DATA_OPTIONS = [o for o in RUN_OPTIONS if (o.config or "").startswith("data.")]
"""The options a resumed run's data must keep (the batch and the window)."""


def check_resume(ckpt_path: str, hparams: dict, options: BiLMOptions, tokens: list[str]) -> None:
    """The data of a resumed run is the checkpoint's: the same vocabulary, batch and window.

    Raises:
        TrainingError: one line naming each setting that differs and the checkpoint's value.
    """
    trained = hparams["options"]
    differ = [
        f"{o.config}={getattr(options, o.key)} (the checkpoint's: {trained[o.key]})"
        for o in _DATA_OPTIONS
        if trained.get(o.key) != getattr(options, o.key)
    ]
    if list(hparams["vocab"]) != list(tokens):
        differ.append(
            f"a vocabulary of {len(tokens)} tokens (the checkpoint's: {len(hparams['vocab'])}; "
            "pass data.vocab_file=<the run's vocab.txt>)"
        )
    if differ:
        raise TrainingError(f"{ckpt_path}: resumed with other data settings: {'; '.join(differ)}")


def run_summary(
    trainer: L.Trainer, output_dir: Path, metrics: dict[str, float], stopped: str | None = None
) -> list[str]:
    """What a finished (or ``stopped``) run leaves: held-out perplexity, the best checkpoint, how
    to export it, and how to resume it (``elmo_lm.training.resume``)."""
    lines = [*([stopped] if stopped else []), f"run directory: {output_dir}"]
    best = trainer.checkpoint_callback
    if "val/ppl" in metrics:
        score = getattr(best, "best_model_score", None)
        best_ppl = f"best {float(score):.3f}, " if score is not None else ""
        lines.append(f"held-out perplexity: {best_ppl}last {metrics['val/ppl']:.3f}")
    path = getattr(best, "best_model_path", "") or getattr(best, "last_model_path", "")
    if path:
        lines.append(f"best checkpoint: {path}")
        lines.append(
            f"export it: python export.py ckpt={path} out={output_dir / 'export' / 'weights.hdf5'}"
        )
    lines.append(f"resume it: python train.py ckpt_path={quote(str(output_dir))}")
    return lines


class _NoTips(logging.Filter):
    NOISE = ("Tip:", "Skipping setting a default `ModelSummary`")

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in self.NOISE)


def quiet_libraries() -> None:
    """No noise a user did not ask for: Lightning's promotional tips, and deprecation warnings
    the libraries raise about each other (printed into the progress bar otherwise)."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoTips())
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings(
            "ignore",
            category=category,
            module=r"(lightning|lightning_fabric|lightning_utilities|torch|tensorboard)\b",
        )


class CheckRunDir(HydraCallback):
    """Hydra callback: checks the run directory before Hydra makes it, so that a read-only or
    impossible ``paths.runs_dir`` is ``error: ...`` (exit 1), not a traceback from Hydra."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        with user_errors():
            _check_run_dir(Path(config.hydra.run.dir))


def _check_run_dir(output_dir: Path) -> None:
    """The run directory exists (Hydra makes it) or can be made, and accepts files."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"run directory {output_dir}: cannot be created: {os_reason(exc)}; "
            "pass paths.runs_dir=<a writable directory>"
        ) from None
    check_writable_dir(output_dir, "run directory")


def init_from_files(init_from: object) -> tuple[Path, Path] | None:
    """``options.json`` and the weights file of ``init_from`` (``elmo_lm.formats.pretrained.resolve``):
    a published name (``small``, ...; ``original`` with its published softmax), a directory holding
    both, the weights file with ``options.json`` beside it, or a list of the two (paths or URLs);
    ``None`` when not given."""
    if not init_from:
        return None
    given = OmegaConf.to_container(init_from) if OmegaConf.is_list(init_from) else init_from
    what = f"init_from={init_from}"
    if isinstance(given, list):
        if len(given) != 2:
            raise TrainingError(f"{what}: a list must be [options file, weights file]")
        return resolve(str(given[0]), str(given[1]), what=what)
    return resolve(str(given), what=what, softmax=True)
