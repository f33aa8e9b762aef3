"""``python train.py ckpt_path=<run dir | last | .ckpt in a run>``: the command line of a resume.

A resume continues its run: the config is composed again from the run's own overrides (its
``.hydra/overrides.yaml``, as the first run wrote it, or those of its latest resume) plus the new
ones, with the run's ``vocab.txt``, into the run's directory (``hydra.run.dir``), so that its
data, vocabulary, trainer limits, callbacks, checkpoints and TensorBoard run go on. Hydra's record
of a resumed attempt goes to ``.hydra/resumed/<date>_<time>/``. A new override that changes the
run's data or model is refused unless ``allow_changes=true`` (fine-tuning is ``init_from=``).

``hydra.run.dir=`` on the command line, Hydra's own flags (``--config-dir``...) or a checkpoint
outside a run directory keep the command line as given: the checkpoint then starts a new run.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from elmo_lm.errors import TrainingError
from elmo_lm.training.checkpointing import resolve_ckpt_path
from elmo_lm.training.config import composition_message, override_key

RUN_OVERRIDES = Path(".hydra") / "overrides.yaml"
"""What Hydra records of a run's command line, in its directory."""

RESUMED = Path(".hydra") / "resumed"
"""Where each resumed attempt's Hydra record goes (``hydra.output_subdir``), one folder each."""

UNGUARDED_DATA = ("num_workers", "seed")
"""Keys of ``data`` that say how it is read, not what: a resume may change them."""


def resume_argv(argv: list[str], config_dir: Path) -> list[str]:
    """The train.py overrides that continue the run ``argv``'s ``ckpt_path=`` names.

    Returns:
        ``argv`` as it is when it resumes nothing of a run directory (see the module).

    Raises:
        TrainingError: a new override changes the run's data or model (without
            ``allow_changes=true``), or nothing to resume from.
    """
    given = _find(argv, "ckpt_path")
    if (
        given in (None, "", "null")
        or any(a.startswith("-") for a in argv)
        or _find(argv, "hydra.run.dir") is not None
    ):
        return argv
    config_dir = Path(config_dir).resolve()
    new = [a for a in argv if override_key(a) != "ckpt_path"]
    run_dir = _run_dir(given, new, config_dir)
    if run_dir is None or not (run_dir / RUN_OVERRIDES).is_file():
        return argv
    saved = [
        a
        for a in _saved_overrides(run_dir)
        if override_key(a) not in ("ckpt_path", "allow_changes")
    ]
    vocab = run_dir / "vocab.txt"
    before = merge(saved, [f"data.vocab_file={quote(str(vocab))}"] if vocab.is_file() else [])
    after = merge(before, new)
    if str(_find(new, "allow_changes")).lower() != "true":
        _check_unchanged(before, after, new, config_dir, f"ckpt_path={given}")
    ckpt = given if Path(given).is_file() else str(run_dir)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    return [
        *after,
        f"ckpt_path={quote(ckpt)}",
        f"hydra.run.dir={quote(str(run_dir))}",
        f"hydra.output_subdir={quote(str(RESUMED / stamp))}",
    ]


def _run_dir(given: str, overrides: list[str], config_dir: Path) -> Path | None:
    """The run directory of ``ckpt_path=given``: itself, a ``.ckpt``'s run, or ``last``'s."""
    if given == "last":
        cfg = _compose(
            config_dir, [a for a in overrides if not override_key(a).startswith("hydra.")]
        )
        runs_dir = Path(OmegaConf.select(cfg, "paths.runs_dir"))
        found = resolve_ckpt_path("last", runs_dir, runs_dir / "<none>", cfg.get("name"))
        return Path(found).parent.parent
    path = Path(given)
    if path.is_dir():
        return path
    if path.is_file() and path.parent.name == "checkpoints":
        return path.parent.parent
    return None


def _saved_overrides(run_dir: Path) -> list[str]:
    """The overrides of the run's latest attempt: its latest resume's, else the first run's."""
    resumes = sorted((run_dir / RESUMED).glob("*/overrides.yaml"))
    return [str(a) for a in OmegaConf.load(resumes[-1] if resumes else run_dir / RUN_OVERRIDES)]


def _check_unchanged(
    before: list[str], after: list[str], new: list[str], config_dir: Path, what: str
) -> None:
    """Refuses ``new`` where the data or model composed from ``after`` differ from ``before``'s,
    naming the override (``model=small``) or else the key that changed."""
    was, now = (_guarded(_compose(config_dir, o)) for o in (before, after))
    for key in sorted(was.keys() | now.keys()):
        if was.get(key) == now.get(key):
            continue
        given = [a for a in new if key == override_key(a) or key.startswith(override_key(a) + ".")]
        part = "model" if key.startswith("model") else "data"
        raise TrainingError(
            f"{what}: {given[0] if given else key} changes the run's {part} ({key}: "
            f"{_short(was.get(key))} -> {_short(now.get(key))}); a resume continues the run as "
            "it was: pass allow_changes=true to go on with the change, or init_from=<an exported "
            "model> to fine-tune"
        )


def _short(value: object) -> str:
    """A value for the one-line error: whole (paths are what the user must recognise), unless
    it is as long as a vocabulary or filter list."""
    text = str(value)
    return text if len(text) <= 240 else text[:237] + "..."


def _guarded(cfg) -> dict[str, object]:
    """The composed data (but how it is read) and model, as dotted keys to plain values."""
    flat = {}

    def visit(prefix: str, node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                visit(f"{prefix}.{k}", v)
        else:
            flat[prefix] = node

    data = OmegaConf.to_container(cfg.data, resolve=True)
    for key in UNGUARDED_DATA:
        data.pop(key, None)
    if isinstance(data.get("vocab_file"), str):
        data["vocab_file"] = os.path.realpath(data["vocab_file"])
    visit("data", data)
    visit("model", OmegaConf.to_container(cfg.model, resolve=True))
    return flat


def _compose(config_dir: Path, overrides: list[str]):
    """The run's config composed again; a Hydra error is ``check_composes``'s one line."""
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name="train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        why = composition_message(exc, overrides, config_dir)
        raise TrainingError(f"resuming with {' '.join(overrides)}: {why}") from None


def merge(first: list[str], then: list[str]) -> list[str]:
    """Hydra overrides ``first`` then ``then``, one per key: a key of ``then`` replaces the one of
    ``first`` in its place (``++key=`` where either added the key)."""
    out = {override_key(a): a for a in first}
    for a in then:
        key = override_key(a)
        old = out.get(key)
        if old is not None and old.startswith("+") != a.startswith("+") and not a.startswith("~"):
            a = "++" + a.lstrip("+")
        out[key] = a
    return list(out.values())


def _find(argv: list[str], key: str) -> str | None:
    values = [a.partition("=")[2] for a in argv if override_key(a) == key and "=" in a]
    return values[-1].strip("'\"") if values else None


def quote(value: str) -> str:
    """``value`` as a Hydra override value: quoted where it holds more than path characters."""
    if re.fullmatch(r"[\w/.\-+:~@%]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
