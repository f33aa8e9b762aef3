"""Pictures for people who would rather look than read (``pip install -e ".[plot]"``): a run's
perplexity against the tokens it has trained on, and the ELMo vectors of an ambiguous word in
two dimensions.

``python plot.py run=RUN_DIR out=curve.png`` draws the curve from the TensorBoard events that
``train.py`` writes (``runs/<name>/<time>/tensorboard``), for those who do not run TensorBoard;
``metrics=probe/wsd_layer1,probe/wsd_layer2`` (or ``metrics=probe/*``) draws those tags against
the training steps instead (the sense probe's, ``train.py +probe=wsd``).
matplotlib is imported only when a picture is drawn; images are written under a temporary name
and renamed when complete, in the format of ``out``'s suffix (``.png``, ``.svg``, ``.pdf``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from elmo_lm.commands.args import REQUIRED, parse_args
from elmo_lm.errors import UserError, require, user_errors
from elmo_lm.formats.atomic import atomic_write, check_output_file

DPI = 100
TRAIN_TAGS = {"train/ppl": "training", "train/sampled_ppl": "training (sampled softmax)"}
VALID_TAG = "val/ppl"

USAGE = (
    "python plot.py run=RUN_DIR out=curve.png [metrics=TAG,TAG|probe/*] [width=800] [height=500]"
)
DEFAULTS = {
    "run": REQUIRED,  # a run directory of train.py, its tensorboard/ or an events file
    "out": "curve.png",  # .png, .svg or .pdf
    "metrics": None,  # logged tags against steps instead (probe/wsd_layer1,...; probe/*: all)
    "width": 800,  # pixels
    "height": 500,
}


class PlotError(UserError):
    """A run without the events to plot, or a picture that cannot be drawn as asked."""


@dataclass
class Curves:
    """Perplexity against tokens trained on, per curve name (``training``, ``validation``)."""

    run: Path
    tokens_per_step: int | None  # None: the run's batch shape is unknown; x is then the step
    points: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (x, perplexity)


def _figure(size: tuple[int, int], n_axes: tuple[int, int] = (1, 1)):
    """A matplotlib ``Figure`` of ``size`` pixels (no pyplot: no window, no global state)."""
    require("matplotlib", "plot", "drawing a plot")
    from matplotlib.figure import Figure

    width, height = size
    if width < 100 or height < 100:
        raise PlotError(f"size={width}x{height}: a picture needs at least 100x100 pixels")
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    axes = fig.subplots(*n_axes, squeeze=False)
    return fig, axes


def _save(fig, out: Path) -> Path:
    fmt = out.suffix.lstrip(".").lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise PlotError(f"out={out}: cannot write .{fmt}; use .png, .svg or .pdf")
    with atomic_write(out, "wb") as f:
        fig.savefig(f, format=fmt, dpi=DPI)
    return out


def event_dir(run: str | os.PathLike) -> Path:
    """The directory of a run's TensorBoard events: the run directory's ``tensorboard/``, the
    events' own directory, or the directory of a given events file.

    Raises:
        PlotError: no events under ``run``, or the events of several runs.
    """
    run = Path(run)
    if run.is_file() and run.name.startswith("events.out.tfevents"):
        return run.parent
    if not run.is_dir():
        raise PlotError(f"run={run}: no such directory; pass a run directory of train.py")
    dirs = sorted({p.parent for p in run.rglob("events.out.tfevents.*")})
    if not dirs:
        raise PlotError(
            f"run={run}: no TensorBoard events under it; pass a run directory of train.py "
            "(runs/<name>/<time>) trained with a logger"
        )
    if len(dirs) > 1:
        raise PlotError(
            f"run={run}: holds the events of {len(dirs)} runs ({dirs[0]}, {dirs[1]}, ...); "
            "pass one of them"
        )
    return dirs[0]


def tokens_per_step(events: Path) -> int | None:
    """Training tokens per optimizer step, all ranks together: ``batch_size * unroll_steps *
    world_size`` from the ``hparams.yaml`` the logger writes beside the events (runs logged
    before ``world_size`` was there count one rank); None without the file."""
    path = events / "hparams.yaml"
    if not path.is_file():
        return None
    try:
        hp = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return (
            int(hp["options/batch_size"])
            * int(hp["options/unroll_steps"])
            * int(hp.get("world_size", 1))
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError):
        return None


def read_scalars(events: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar tag of the events in ``events`` -> (steps, values), by step; where a
    resumed run logged a step again, the later value is kept."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
    accumulator.Reload()
    out = {}
    for tag in accumulator.Tags().get("scalars", []):
        by_step = {}
        for event in sorted(accumulator.Scalars(tag), key=lambda e: e.wall_time):
            by_step[event.step] = event.value
        steps = sorted(by_step)
        out[tag] = (np.array(steps, dtype=np.float64), np.array([by_step[k] for k in steps]))
    return out


def read_curves(run: str | os.PathLike) -> Curves:
    """The training and validation perplexity of a run, from its TensorBoard events.

    A value logged at step s (``trainer.global_step`` while it was logged) comes after s + 1
    batches, so it is placed at ``(s + 1) * tokens_per_step`` tokens. Where a resumed run
    logged a step again, the later value is kept.
    """
    events = event_dir(run)
    scalars = read_scalars(events)
    per_step = tokens_per_step(events)
    points = {}
    names = {**{t: n for t, n in TRAIN_TAGS.items() if t in scalars}, VALID_TAG: "validation"}
    for tag, name in names.items():
        if tag in scalars:
            steps, values = scalars[tag]
            points[name] = ((steps + 1) * (per_step or 1), values)
    if not points:
        raise PlotError(
            f"{events}: no train/ppl or val/ppl in the events yet; plot once the run has "
            "logged a few steps (trainer.log_every_n_steps)"
        )
    return Curves(Path(run), per_step, points)


def plot_curves(
    run: str | os.PathLike, out: str | os.PathLike, size: tuple[int, int] = (800, 500)
) -> Path:
    """Draws a run's training and validation perplexity against tokens seen into ``out``.

    Raises:
        MissingExtraError: matplotlib is not installed.
        PlotError: no events to plot, a size below 100 pixels, an unknown image suffix.
    """
    out = check_output_file(out, "out")
    curves = read_curves(run)
    fig, axes = _figure(size)
    from matplotlib.ticker import EngFormatter, FuncFormatter

    ax = axes[0, 0]
    for name, (x, ppl) in curves.points.items():
        if name == "validation":
            ax.plot(x, ppl, "o-", color="tab:orange", label=f"{name} (last {ppl[-1]:.2f})")
        else:
            ax.plot(x, ppl, "-", color="tab:blue", alpha=0.7, lw=1, label=name)
    ax.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")  # 20, not 2 x 10^1
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.xaxis.set_major_formatter(EngFormatter())  # 1.5M, not 1500000
    ax.set_xlabel("tokens seen" if curves.tokens_per_step else "training steps")
    ax.set_ylabel("perplexity (log scale)")
    ax.set_title(_title(curves.run))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(fig, out)


def plot_metrics(
    run: str | os.PathLike,
    metrics: str | Sequence[str],
    out: str | os.PathLike,
    size: tuple[int, int] = (800, 500),
) -> Path:
    """Draws logged tags against training steps into ``out``: ``metrics`` a comma list or a
    list of tags (``probe/wsd_layer1``), a tag ending in ``*`` standing for all it begins.

    Raises:
        MissingExtraError: matplotlib is not installed.
        PlotError: a tag the run has not logged, a size below 100 pixels, an unknown suffix.
    """
    out = check_output_file(out, "out")
    events = event_dir(run)
    scalars = read_scalars(events)
    wanted = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    tags = []
    for want in (w.strip() for w in wanted if w.strip()):
        if want.endswith("*"):
            found = [t for t in sorted(scalars) if t.startswith(want[:-1])]
        else:
            found = [want] if want in scalars else []
        if not found:
            probe = ", ".join(t for t in sorted(scalars) if t.startswith("probe/")) or "none"
            raise PlotError(
                f"metrics={want}: not logged in {events}; its probe tags: {probe} "
                "(train with +probe=wsd to log them)"
            )
        tags += [t for t in found if t not in tags]
    fig, axes = _figure(size)
    ax = axes[0, 0]
    for tag in tags:
        steps, values = scalars[tag]
        ax.plot(steps + 1, values, "o-", ms=3, label=f"{tag} (last {values[-1]:.3f})")
    ax.set_xlabel("training steps")
    ax.set_ylabel(", ".join(dict.fromkeys(t.split("/")[0] for t in tags)))
    ax.set_title(_title(Path(run)))
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, out)


def _title(run: Path) -> str:
    parts = run.resolve().parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else str(run)


def pca_2d(vectors: np.ndarray, also: np.ndarray | None = None):
    """The first two principal components of ``vectors`` (n, D), and ``also`` (m, D) projected
    onto the same axes: ``(points (n, 2), also_points (m, 2) or None, explained share (2,))``."""
    mean = vectors.mean(0)
    centred = vectors - mean
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)  # axes: (min(n, D), D)
    axes = axes[:2]
    if axes.shape[0] < 2:  # one occurrence, or vectors that all lie on one line
        axes = np.vstack([axes, np.zeros((2 - axes.shape[0], vectors.shape[1]))])
    variance = singular**2
    share = variance[:2] / max(variance.sum(), 1e-30)
    share = np.pad(share, (0, 2 - len(share)))
    projected_also = None if also is None else (also - mean) @ axes.T
    return centred @ axes.T, projected_also, share


@dataclass
class WordSenses:
    """The contextual vectors of a word's occurrences, their sense labels, and its static
    vector (the same in every context, in the same space, e.g. the biLM's layer 0)."""

    word: str
    vectors: np.ndarray  # (n, D)
    senses: list[str]
    static: np.ndarray | None = None  # (D,)


def plot_senses(
    words: Sequence[WordSenses],
    out: str | os.PathLike,
    size: tuple[int, int] = (1200, 650),
    title: str = "ELMo vectors by sense (PCA per word); the star is the static vector",
) -> Path:
    """One panel per word: its occurrences' vectors in 2-D (PCA of that word's vectors),
    coloured by sense, beside the single point of its static vector.

    Raises:
        MissingExtraError: matplotlib is not installed.
        PlotError: no word given, a size below 100 pixels, an unknown image suffix.
    """
    out = check_output_file(out, "out")
    if not words:
        raise PlotError("no word to plot: give at least one word that occurs in two senses")
    n_cols = min(len(words), 4)
    n_rows = math.ceil(len(words) / n_cols)
    fig, axes = _figure(size, (n_rows, n_cols))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for ax, item in zip(axes.flat, words, strict=False):
        also = None if item.static is None else item.static[None]
        points, static, share = pca_2d(item.vectors, also)
        for k, sense in enumerate(dict.fromkeys(item.senses)):
            mine = np.array([s == sense for s in item.senses])
            ax.scatter(
                *points[mine].T, s=14, alpha=0.75, color=colours[k % len(colours)], label=sense
            )
        if static is not None:
            ax.scatter(*static.T, s=160, marker="*", color="black", label="static")
        ax.set_title(item.word, fontsize=11, fontweight="bold")
        ax.set_xlabel(f"PC1 ({share[0]:.0%})", fontsize=8)
        ax.set_ylabel(f"PC2 ({share[1]:.0%})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="best", handletextpad=0.2, borderpad=0.3)
    for ax in list(axes.flat)[len(words) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=12)
    return _save(fig, out)


def main(argv: Sequence[str] | None = None) -> None:
    """``python plot.py run=RUN_DIR out=curve.png`` (``USAGE``)."""
    with user_errors():
        args = parse_args(argv, DEFAULTS, USAGE)
        size = (args["width"], args["height"])
        if args["metrics"]:
            path = plot_metrics(args["run"], args["metrics"], args["out"], size)
        else:
            path = plot_curves(args["run"], args["out"], size)
    print(f"wrote {path}", file=sys.stderr)
