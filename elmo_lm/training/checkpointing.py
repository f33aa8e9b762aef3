"""Checkpointing a run: written whole or not at all, which checkpoint a resume takes, and
the callback states it carries over.

Lightning's own writer stages a local checkpoint in the system's temporary directory and copies
it to its final name; a run killed during the copy (or a full disk) leaves a piece under the
final name and an orphan in ``/tmp``. ``AtomicCheckpointIO`` writes in the checkpoint's own
directory instead (``elmo_lm.formats.atomic``): the final name always holds a whole checkpoint.

A resume takes the newest checkpoint of a run that loads (``resolve_ckpt_path``), and gives its
callback states to the Trainer's callbacks under their current keys (``keep_callback_states``),
before Lightning matches them. Reading a checkpoint is ``elmo_lm.formats.checkpoint``'s.
"""

from __future__ import annotations

import ast
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO

from elmo_lm.errors import OutputError, os_reason
from elmo_lm.formats.atomic import atomic_write, remove_stale_temporaries
from elmo_lm.formats.checkpoint import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` under a temporary name in the checkpoint's directory, fsync, rename.

    Remote paths (``s3://`` and the like) go to Lightning's writer unchanged.

    Attributes:
        trainer: the Trainer whose callbacks take a loaded checkpoint's callback states (set
            once the Trainer is built); None leaves the states as they are.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trainer = None

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            for tmp in remove_stale_temporaries(path.parent):
                log.warning("removed %s, left by a process that was killed while writing", tmp)
            with atomic_write(path) as f:
                torch.save(checkpoint, f)
        except OSError as exc:
            raise OutputError(
                f"{path}: cannot write the checkpoint: {os_reason(exc)}; the checkpoints already "
                f"in {path.parent} are whole: resume from the run directory"
            ) from None

    def load_checkpoint(self, path: str | os.PathLike, *args: Any, **kwargs: Any) -> dict[str, Any]:
        checkpoint = super().load_checkpoint(path, *args, **kwargs)
        if self.trainer is None or not checkpoint.get("callbacks"):
            return checkpoint
        states, changed, dropped = keep_callback_states(
            checkpoint["callbacks"], self.trainer.callbacks
        )
        checkpoint["callbacks"] = states
        if not self.trainer.is_global_zero:
            return checkpoint
        for line in changed:
            log.info("callback state kept under new settings: %s", line)
        if dropped:
            log.warning(
                "callback state not restored, as this run has no such callback: %s",
                "; ".join(dropped),
            )
        return checkpoint


def newest_that_loads(candidates: list[Path]) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest of ``candidates`` (by modification time) that ``read_checkpoint`` accepts,
    and the newer ones it skipped, each with the reason."""
    skipped = []
    for path in sorted(candidates, key=lambda p: p.stat().st_mtime_ns, reverse=True):
        try:
            read_checkpoint(path)
        except ValueError as exc:
            skipped.append((path, str(exc)))
            continue
        return path, skipped
    return None, skipped


RESUME_CHECKPOINTS = ("last.ckpt", "latest-step*.ckpt", "stopped-step*.ckpt")
"""What a run directory offers to resume from: ``last.ckpt`` (written at each validation), the
periodic ``latest-step<N>.ckpt`` (every ``callbacks.periodic.every_n_train_steps``) and
``stopped-step<N>.ckpt``, of the step a SIGTERM or Ctrl-C stopped (``training.signals``)."""


def _run_checkpoints(run_dir: Path) -> list[Path]:
    return [p for pattern in RESUME_CHECKPOINTS for p in (run_dir / "checkpoints").glob(pattern)]


def resolve_ckpt_path(
    ckpt_path: str | None, runs_dir: Path, output_dir: Path, name: str | None = None
) -> str | None:
    """The checkpoint to resume from: a ``.ckpt`` file, a run directory (the newest of its
    ``checkpoints/last.ckpt`` and periodic ``latest-step*.ckpt`` that loads), or ``last``: the
    same among every earlier run under ``runs_dir/<name>`` (all of ``runs_dir`` without
    ``name``). Newer checkpoints that do not load are skipped with a warning naming them.

    Raises:
        CheckpointError: nothing to resume from; the message says what to pass.
    """
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
            raise CheckpointError(
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
        raise CheckpointError(
            f"ckpt_path={ckpt_path}: checkpoint not found; pass a .ckpt written by train.py, its "
            "run directory, or ckpt_path=last"
        )
    return str(path)


def _newest_that_loads(found: list[Path], what: str) -> Path:
    newest, skipped = newest_that_loads(found)
    for path, reason in skipped:
        log.warning("skipping %s: cannot be read as a checkpoint (%s)", path, reason)
    if newest is None:
        raise CheckpointError(
            f"{what}: none of its {len(found)} checkpoints can be read "
            f"({', '.join(str(p) for p, _ in skipped)}); pass ckpt_path=<a .ckpt that loads>"
        )
    log.info("resuming from %s", newest)
    return newest


_IDENTITY = ("monitor", "mode")
"""What a callback's state is about (``ModelCheckpoint``, ``EarlyStopping``); a state is kept
across other changes of its settings (``every_n_train_steps`` and the like)."""


def keep_callback_states(
    states: dict[str, Any], callbacks: Sequence[L.Callback]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """The callback states of a checkpoint, under the keys of this run's ``callbacks``.

    Lightning keys a callback's state by its class and settings (``ModelCheckpoint{'monitor':
    'step', ..., 'every_n_train_steps': 200, ...}``) and drops a state whose key no callback of
    the resumed run has, with a long warning. Here a state goes to the callback of the same class
    that monitors the same metric in the same mode, when exactly one such callback is left; a
    ``ModelCheckpoint`` state also takes the callback's directory (a resumed run writes into its
    own), so that its best score, best and last checkpoints carry on (Lightning never deletes a
    checkpoint outside the directory it writes to).

    Returns:
        The states under their new keys; the states kept under changed settings, each as
        ``ModelCheckpoint(monitor=step, mode=max): every_n_train_steps 7 -> 200``; and the keys
        of the states that no callback takes.
    """
    states = dict(states)
    kept, changed = {}, []
    current = {c.state_key: c for c in callbacks}
    for key in [k for k in states if k in current]:
        kept[key] = _with_dirpath(states.pop(key), current.pop(key))
    for key in list(states):
        name, settings = _parse_state_key(key)
        takers = [
            k
            for k in current
            if _parse_state_key(k)[0] == name
            and all(settings.get(f) == _parse_state_key(k)[1].get(f) for f in _IDENTITY)
        ]
        if len(takers) != 1:
            continue
        new = takers[0]
        kept[new] = _with_dirpath(states.pop(key), current.pop(new))
        now = _parse_state_key(new)[1]
        diff = ", ".join(
            f"{f} {settings.get(f)} -> {v}" for f, v in now.items() if settings.get(f) != v
        )
        changed.append(f"{_describe(name, settings)}: {diff}")
    return kept, changed, list(states)


def _parse_state_key(key: Any) -> tuple[str, dict]:
    """``ModelCheckpoint{'monitor': 'step', ...}`` -> ``("ModelCheckpoint", {"monitor": ...})``;
    a key whose settings are not all plain literals has none."""
    name, brace, rest = str(key).partition("{")
    try:
        settings = ast.literal_eval(brace + rest) if brace else {}
    except (ValueError, SyntaxError):
        settings = {}
    return name, settings if isinstance(settings, dict) else {}


def _describe(name: str, settings: dict) -> str:
    what = ", ".join(f"{f}={settings[f]}" for f in _IDENTITY if f in settings)
    return f"{name}({what})"


_PATHS = ("best_model_path", "kth_best_model_path", "last_model_path")


def _with_dirpath(state: Any, callback: L.Callback) -> Any:
    """``state`` writing into ``callback``'s directory; its checkpoints that lie there under
    the same name (a run directory moved or copied, then resumed in place) are named there."""
    dirpath = getattr(callback, "dirpath", None)
    if not (isinstance(state, dict) and "dirpath" in state and dirpath):
        return state

    def here(path: Any) -> Any:
        if not path or Path(str(path)).parent == Path(dirpath):
            return path
        moved = Path(dirpath) / Path(str(path)).name
        return str(moved) if moved.is_file() else path

    state = {**state, "dirpath": dirpath}
    for key in _PATHS:
        if key in state:
            state[key] = here(state[key])
    if isinstance(state.get("best_k_models"), dict):
        state["best_k_models"] = {here(k): v for k, v in state["best_k_models"].items()}
    return state
