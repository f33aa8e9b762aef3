"""A seeded 20-step training run's trace: per-step loss and gradient norm, held-out perplexity.

``python scripts/training_trace.py [--out trace.json] [--steps 20]`` trains the ``tiny`` model
on the bundled sample corpus (data/sample) through ``train.py`` (Hydra, Lightning, the CPU),
reads the run's TensorBoard events and prints the trace as JSON. Two traces of the same commit
on the same machine are equal to the last digit; a refactor that must not change training
(a module move, a rename) is checked by comparing its trace with one recorded before it
(tests/integration/test_trace.py keeps one: tests/fixtures/trace_tiny_20.json).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def overrides(runs_dir: Path, steps: int) -> list[str]:
    """train.py overrides of the traced run: tiny, batch 8 x 10, validation once at the end."""
    return [
        f"paths.runs_dir={runs_dir}",
        "model=tiny",
        "hardware=cpu",
        "seed=3",
        "data.batch_size=8",
        "data.unroll_steps=10",
        f"trainer.limit_train_batches={steps}",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
        "trainer.limit_val_batches=10",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "callbacks.periodic=null",
    ]


def read_events(run_dir: Path) -> dict[str, list[list[float]]]:
    """Every scalar of the run's TensorBoard events as ``{tag: [[step, value], ...]}``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(run_dir.rglob("events.out.tfevents.*"))
    if not files:
        raise SystemExit(f"error: no TensorBoard events under {run_dir}")
    acc = EventAccumulator(str(files[0].parent), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def trace(steps: int = 20, python: str = sys.executable) -> dict[str, list[list[float]]]:
    """Runs the traced training and returns its loss, gradient norm and held-out perplexities."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        subprocess.run(
            [python, str(ROOT / "train.py"), *overrides(runs, steps)],
            check=True,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
        )
        scalars = read_events(runs)
    keep = ("train/loss", "train/grad_norm", "val/ppl", "val/ppl_fwd", "val/ppl_bwd")
    return {tag: scalars[tag] for tag in keep if tag in scalars}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the trace to this JSON file")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    result = trace(args.steps)
    text = json.dumps(result, indent=1) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
