"""What ``train.py``, ``evaluate.py`` and ``export.py`` do, as functions tests can call.

``train(cfg)`` takes the composed Hydra config of ``conf/train.yaml`` (see
docs/TRAINING_GUIDE.md); ``evaluate`` and ``export`` take plain arguments and need only a
checkpoint, never the config it was trained with.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback as HydraCallback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from elmo_lm.atomic import (
    check_output_file,
    check_writable_dir,
    remove_stale_temporaries,
    write_text,
)
from elmo_lm.bilm import BiLM
from elmo_lm.callbacks import MetricsFile, plain_metrics
from elmo_lm.characters import MAX_CHARACTERS_PER_TOKEN
from elmo_lm.checkpoints import AtomicCheckpointIO, newest_that_loads, read_checkpoint
from elmo_lm.errors import OutputError, UserError, os_reason, user_errors
from elmo_lm.lightning_module import ElmoLM, perplexities
from elmo_lm.options import (
    BiLMOptions,
    CharCNNOptions,
    CharEmbeddingOptions,
    LSTMOptions,
)
from elmo_lm.stream import HeldOutStreams, ValidationSentences
from elmo_lm.vocabulary import Files, corpus_files, iter_sentences

log = logging.getLogger(__name__)

PUBLISHED_FILTERS = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]


__all__ = ["TrainingError", "evaluate", "export", "train", "user_errors"]


class TrainingError(UserError):
    """A mistake in what the user asked for; the message says what to fix."""


def parse_args(argv: list[str], defaults: dict, usage: str) -> dict:
    """``key=value`` arguments, as train.py takes them, over ``defaults``; values are typed as
    in YAML. Unknown keys and missing required ones (default None) are one-line errors."""
    given = {}
    for arg in argv:
        key, sep, _ = arg.partition("=")
        if not sep or key not in defaults:
            raise TrainingError(f"{arg!r}: not a known key=value argument; usage: {usage}")
        given.update(OmegaConf.to_container(OmegaConf.from_dotlist([arg])))
    args = {**defaults, **given}
    missing = [k for k, v in args.items() if v is None]
    if missing:
        raise TrainingError(f"missing {', '.join(f'{k}=...' for k in missing)}; usage: {usage}")
    return args


def build_options(
    *,
    lstm_dim: int,
    projection_dim: int,
    n_layers: int = 2,
    n_highway: int = 1,
    filters: list[list[int]] | None = None,
    char_dim: int = 16,
    activation: str = "relu",
    max_characters_per_token: int = MAX_CHARACTERS_PER_TOKEN,
    cell_clip: float | None = 3.0,
    proj_clip: float | None = 3.0,
    use_skip_connections: bool = True,
    dropout: float = 0.1,
) -> BiLMOptions:
    """The biLM shape of a ``conf/model/*.yaml`` file, as ``BiLMOptions``.

    Args:
        lstm_dim: LSTM cells per layer and direction.
        projection_dim: size of the projected LSTM outputs and token embeddings.
        n_layers: LSTM layers per direction.
        n_highway: highway layers after the character convolutions.
        filters: ``[width, n_filters]`` pairs; None for the published seven.
        char_dim: character embedding size.
        activation: ``relu`` or ``tanh`` after the convolutions.
        max_characters_per_token: character ids per token.
        cell_clip, proj_clip: LSTM clipping, None for none.
        use_skip_connections: residual connection around LSTM layers after the first.
        dropout: on each LSTM layer's input and the top output, while training.
    """
    options = BiLMOptions(
        lstm=LSTMOptions(
            dim=lstm_dim,
            projection_dim=projection_dim,
            n_layers=n_layers,
            cell_clip=cell_clip,
            proj_clip=proj_clip,
            use_skip_connections=use_skip_connections,
        ),
        char_cnn=CharCNNOptions(
            activation=activation,
            embedding=CharEmbeddingOptions(dim=char_dim),
            filters=[list(f) for f in (filters or PUBLISHED_FILTERS)],
            n_highway=n_highway,
            max_characters_per_token=max_characters_per_token,
        ),
        dropout=dropout,
    )
    options.validate("conf/model")
    return options


def train(cfg: DictConfig) -> dict[str, float]:
    """Trains (or resumes, or fine-tunes) a biLM as ``cfg`` says; see conf/train.yaml.

    Returns:
        The last logged metrics (``val/ppl`` and friends), also written to
        ``<output_dir>/metrics.json`` by rank 0, with the vocabulary as ``vocab.txt``.
    """
    check_config(cfg)
    quiet_libraries()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    output_dir = Path(cfg.paths.output_dir)
    _check_run_dir(output_dir)
    ckpt_path = resolve_ckpt_path(
        cfg.ckpt_path, Path(cfg.paths.runs_dir), output_dir, cfg.get("name")
    )

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    vocab = datamodule.vocab
    if ckpt_path is not None:
        module = _module_for_resume(ckpt_path, vocab.tokens)
    else:
        options = _initial_options(cfg)
        options.unroll_steps = datamodule.unroll_steps
        options.batch_size = datamodule.batch_size
        options.n_train_tokens = datamodule.n_train_tokens
        options.n_epochs = int(cfg.trainer.max_epochs)
        options.char_cnn.max_characters_per_token = datamodule.max_characters_per_token
        try:
            module = instantiate(
                cfg.module, options=options.to_dict(), vocab=list(vocab.tokens), _convert_="all"
            )
        except InstantiationException as exc:
            # ElmoLM raises ValueError only for what the config asks (softmax, options).
            if isinstance(exc.__cause__, ValueError):
                raise TrainingError(str(exc.__cause__)) from None
            raise
        if cfg.init_from:
            options_file, weight_file = _pair(cfg.init_from)
            module.bilm.load_state_dict(BiLM.from_hdf5(options_file, weight_file).state_dict())
            log.info("fine-tuning the biLM of %s on a vocabulary of %d", weight_file, len(vocab))

    callback_cfgs = [c for c in (cfg.get("callbacks") or {}).values() if c]
    if not cfg.trainer.get("enable_model_summary", True):
        callback_cfgs = [c for c in callback_cfgs if "ModelSummary" not in c.get("_target_", "")]
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
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    plugins = [*(instantiate(cfg.trainer.get("plugins")) or []), AtomicCheckpointIO()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger, plugins=plugins)
    if trainer.is_global_zero:
        # Written now, so that a killed run can be resumed with data.vocab_file=<run>/vocab.txt.
        vocab.save(output_dir / "vocab.txt")
        log.info("run directory: %s", output_dir)
    # ElmoDataModule continues a restored epoch where it stopped (ElmoDataModule._resume_position).
    warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
    # The streams' length is exact per rank and worker (TrainStream.steps_per_epoch).
    warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    metrics = plain_metrics(trainer)
    if trainer.is_global_zero:
        write_text(output_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        for line in run_summary(trainer, output_dir, metrics):
            log.info(line)
    return metrics


def run_summary(trainer: L.Trainer, output_dir: Path, metrics: dict[str, float]) -> list[str]:
    """What a finished run leaves: held-out perplexity, the best checkpoint, how to export it."""
    lines = [f"run directory: {output_dir}"]
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


def check_config(cfg: DictConfig) -> None:
    """Refuses impossible settings before anything is read or built, naming the key.

    Raises:
        TrainingError: e.g. ``data.batch_size=0: must be an integer >= 1``.
    """

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
    chars = value("data.max_characters_per_token")
    if chars is not None and not (is_int(chars) and chars >= 3):
        refuse("data.max_characters_per_token", "an integer >= 3 (<bow>, a character, <eow>)")
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


def _initial_options(cfg: DictConfig) -> BiLMOptions:
    if cfg.init_from:
        options_file, _ = _pair(cfg.init_from)
        return BiLMOptions.from_json(options_file)
    return build_options(**OmegaConf.to_container(cfg.model, resolve=True))


def _pair(init_from: str) -> tuple[Path, Path]:
    """``options.json`` and the weights file of ``init_from``: a directory holding both, or the
    weights file with ``options.json`` beside it."""
    path = Path(init_from)
    if path.is_dir():
        weights = sorted(path.glob("*.hdf5"))
        if len(weights) != 1:
            raise TrainingError(
                f"init_from={init_from}: expected one .hdf5 weights file in the directory, found "
                f"{len(weights)}; pass init_from=<dir>/<weights>.hdf5"
            )
        path = weights[0]
    if not path.is_file():
        raise TrainingError(
            f"init_from={init_from}: no such weights file; pass an exported weights.hdf5 "
            "(with its options.json beside it) or the directory holding both"
        )
    return path.with_name("options.json"), path


RESUME_CHECKPOINTS = ("last.ckpt", "latest-step*.ckpt")
"""What a run directory offers to resume from: ``last.ckpt`` (written at each validation) and
the periodic ``latest-step<N>.ckpt`` (every ``callbacks.periodic.every_n_train_steps``)."""


def _run_checkpoints(run_dir: Path) -> list[Path]:
    return [p for pattern in RESUME_CHECKPOINTS for p in (run_dir / "checkpoints").glob(pattern)]


def resolve_ckpt_path(
    ckpt_path: str | None, runs_dir: Path, output_dir: Path, name: str | None = None
) -> str | None:
    """The checkpoint to resume from: a ``.ckpt`` file, a run directory (the newest of its
    ``checkpoints/last.ckpt`` and periodic ``latest-step*.ckpt`` that loads), or ``last``: the
    same among every earlier run under ``runs_dir/<name>`` (all of ``runs_dir`` without
    ``name``). Newer checkpoints that do not load are skipped with a warning naming them."""
    if ckpt_path in (None, ""):
        return None
    if ckpt_path == "last":
        where = runs_dir / name if name else runs_dir
        runs = {c.parent.parent for c in where.glob("**/checkpoints/*.ckpt")}
        found = [
            p
            for run in runs
            if run.resolve() != output_dir.resolve()
            for p in _run_checkpoints(run)
        ]
        if not found:
            raise TrainingError(
                f"ckpt_path=last: no checkpoints/last.ckpt or latest-step*.ckpt under {where}; "
                "pass ckpt_path=<run dir or .ckpt file>"
            )
        return str(_newest_that_loads(found, f"ckpt_path=last ({where})"))
    path = Path(ckpt_path)
    if path.is_dir():
        found = _run_checkpoints(path)
        for tmp in remove_stale_temporaries(path / "checkpoints"):
            log.warning("removed %s, left by a run killed while writing it", tmp)
        if found:
            return str(_newest_that_loads(found, f"ckpt_path={ckpt_path}"))
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise TrainingError(
            f"ckpt_path={ckpt_path}: checkpoint not found; pass a .ckpt written by train.py, its "
            "run directory, or ckpt_path=last"
        )
    return str(path)


def _newest_that_loads(found: list[Path], what: str) -> Path:
    newest, skipped = newest_that_loads(found)
    for path, reason in skipped:
        log.warning("skipping %s: cannot be read as a checkpoint (%s)", path, reason)
    if newest is None:
        raise TrainingError(
            f"{what}: none of its {len(found)} checkpoints can be read "
            f"({', '.join(str(p) for p, _ in skipped)}); pass ckpt_path=<a .ckpt that loads>"
        )
    log.info("resuming from %s", newest)
    return newest


def _module_for_resume(ckpt_path: str, tokens: list[str]) -> ElmoLM:
    """The module as the checkpoint describes it (shape, vocabulary, optimizer settings)."""
    hparams = _read_checkpoint(ckpt_path)["hyper_parameters"]
    if list(hparams["vocab"]) != list(tokens):
        raise TrainingError(
            f"{ckpt_path}: trained with a different vocabulary ({len(hparams['vocab'])} tokens) "
            f"than the data gives ({len(tokens)}); pass data.vocab_file=<the run's vocab.txt>"
        )
    return ElmoLM(**hparams)


def _read_checkpoint(ckpt: str | os.PathLike) -> dict:
    path = Path(ckpt)
    if not path.is_file():
        raise TrainingError(
            f"ckpt={ckpt}: checkpoint not found; pass a .ckpt written by train.py "
            "(runs/<name>/<time>/checkpoints/last.ckpt)"
        )
    try:
        checkpoint = read_checkpoint(path)
    except ValueError as exc:
        raise TrainingError(
            f"{ckpt}: cannot be read as a checkpoint ({exc}); the file is truncated or not a "
            "checkpoint: pass another .ckpt, or the run directory to take the newest that loads"
        ) from None
    if "options" not in checkpoint.get("hyper_parameters", {}):
        raise TrainingError(f"{ckpt}: not a checkpoint written by train.py (no options)")
    return checkpoint


def load_module(ckpt: str | os.PathLike, map_location: str | torch.device = "cpu") -> ElmoLM:
    """The trained module of a checkpoint, without any config (one-line error when missing)."""
    _read_checkpoint(ckpt)
    return ElmoLM.load_from_checkpoint(ckpt, map_location=map_location, weights_only=True)


def evaluate(
    ckpt: str | os.PathLike,
    data: Files,
    batch_size: int = 64,
    max_sentence_tokens: int = 400,
    device: str = "auto",
    unroll_steps: int = 20,
) -> dict[str, float]:
    """Held-out perplexity of a checkpoint on a sentence-per-line file, with the full softmax.

    ``ppl`` is the original's ``test()`` definition, as in validation: the text read as
    ``batch_size`` streams, the LSTM state carried from one sentence to the next (every token
    scored). ``ppl_zero_state`` scores each sentence on its own from a zero state, as stateless
    embeddings start (sentences longer than ``max_sentence_tokens`` words in pieces).

    Returns:
        ``ppl_fwd``, ``ppl_bwd``, ``ppl`` (exp of the mean of both directions' losses), the same
        three with ``_zero_state``, ``tokens`` (targets per direction: words plus ``</S>``) and
        ``oov_rate``, the share of words outside the vocabulary (scored as ``<UNK>``; a warning
        above ``OOV_WARNING``, as the perplexity then says little).
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    module = load_module(ckpt, map_location=device).eval()
    max_chars = module.options.char_cnn.max_characters_per_token
    streams = HeldOutStreams(
        data, module.vocab, batch_size, unroll_steps, max_chars, rank=0, world_size=1
    )
    sentences = ValidationSentences(
        data,
        module.vocab,
        batch_size=batch_size,
        max_characters_per_token=max_chars,
        max_sentence_tokens=max_sentence_tokens,
        rank=0,
        world_size=1,
    )
    carried = torch.zeros(4, dtype=torch.float64, device=device)
    zero = torch.zeros(4, dtype=torch.float64, device=device)
    states: dict = {}
    with torch.inference_mode():
        for batch in streams:
            carried += module.score_stream_batch(_to(batch, device), states)
        for batch in sentences:
            zero += module.score_batch(_to(batch, device))[0]
    zero_ppl = {f"{k}_zero_state": v for k, v in perplexities(zero).items()}
    oov = oov_rate(module.vocab, data)
    if oov > OOV_WARNING:
        log.warning(
            "%.0f%% of the words of %s are not in the model's vocabulary: they are all scored as "
            "<UNK>, so the perplexity flatters the model",
            100 * oov,
            data,
        )
    return {**perplexities(carried), **zero_ppl, "tokens": float(carried[1]), "oov_rate": oov}


OOV_WARNING = 0.1
"""``evaluate`` warns when more than this share of the words is out of the vocabulary."""


def oov_rate(vocab, data: Files) -> float:
    """The share of the words of ``data`` that ``vocab`` does not hold."""
    n = unknown = 0
    for tokens in iter_sentences(corpus_files(data)):
        n += len(tokens)
        unknown += sum(t not in vocab for t in tokens)
    return unknown / max(n, 1)


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def export(ckpt: str | os.PathLike, out: str | os.PathLike = "weights.hdf5") -> dict[str, Path]:
    """Writes a checkpoint's biLM as the original tools' files.

    ``out`` gets the weights; ``options.json`` (``n_characters`` 262) and ``vocab.txt`` (the
    softmax vocabulary, one token per line) go beside it.

    Returns:
        The paths written: ``weights``, ``options``, ``vocab``.
    """
    weights = check_output_file(out, "out", create_dir=True)
    paths = {
        "weights": weights,
        "options": weights.with_name("options.json"),
        "vocab": weights.with_name("vocab.txt"),
    }
    for path in paths.values():
        if path.is_dir():
            raise OutputError(f"{path}: is a directory; export needs it free for a file")
    module = load_module(ckpt)
    try:
        module.bilm.to_hdf5(paths["options"], paths["weights"])
        module.vocab.save(paths["vocab"])
    except OSError as exc:
        raise OutputError(
            f"{exc.filename or weights}: cannot write the export: {os_reason(exc)}"
        ) from None
    return paths
