"""Fine-tuning from an export with its softmax (warm) against the same export without it (cold).

Usage:
    python bench/bench_finetune.py --model DIR --corpus data/wordnet [--steps 300] [--every 50]
        [--seeds 3] [--batch-size 32] [--unroll 20] [--vocab-max-size N] [--val-batches N]
    python bench/bench_finetune.py --model DIR --train T.txt --valid V.txt [--vocab V.txt] ...

``--model`` is what ``init_from=`` takes, with its softmax beside its weights (``export.py ...
softmax=true``, or the published ``original``). Two copies of it are made in ``--work`` (links to
its files): ``warm``, all of them, and ``cold``, without the softmax file. Each seed then runs
``python train.py init_from=<copy>`` once per copy on the fine-tuning corpus (``--corpus``, a
prepared corpus, or ``--train``/``--valid``) and its vocabulary (``--vocab``, else the corpus's or
the one built from the training files, cut to the ``--vocab-max-size`` most frequent tokens where
given), with the same seed, steps, batch and vocabulary: the only difference is the
softmax's start, warm (each token of the new vocabulary found in the model's gets its row) or
fresh, as a published model without its softmax starts.

Held-out perplexity is the run's own validation (``val/ppl``: the valid files read as streams,
the state carried, full softmax), before training (step 0: a full validation in place of the
sanity check) and every ``--every`` steps; a callback of this file records each into the run's
``history.jsonl`` and the last is the run's ``metrics.json``. Printed: one row per step, the
warm and the cold perplexity of each seed, their geometric means over the seeds and the ratio
cold / warm; then the same as one JSON line. ``python scripts/make_real_corpus.py --source
wordnet`` builds a fine-tuning corpus of another domain (dictionary English).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import lightning as L

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("warm", "cold")
HISTORY = "history.jsonl"
ALL_BATCHES = 10**9
"""The sanity check's batches: all of them (the held-out streams end first)."""
WARM_ROWS = re.compile(r"softmax: (\d+) of (\d+) rows warm")


class ValidationHistory(L.Callback):
    """Appends each validation's ``val/*`` metrics, with the step, to ``path`` (JSON lines),
    the sanity check's included (step 0 when it validates in full)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if metrics:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"step": trainer.global_step, **metrics}) + "\n")


def model_copies(model: str, work: Path) -> dict[str, Path]:
    """``work/warm`` and ``work/cold``: links to the files of ``model`` (``init_from``'s
    resolver), the softmax left out of ``cold``; exits in one line without a softmax."""
    from elmo_lm.errors import user_errors
    from elmo_lm.formats.pretrained import resolve
    from elmo_lm.formats.softmax_file import softmax_file_for, vocab_file_for
    from elmo_lm.formats.tokenize import TOKENIZER_FILE

    with user_errors():
        options, weights = resolve(model, softmax=True)
        softmax = softmax_file_for(weights)
        if softmax is None:
            raise SystemExit(
                f"error: {model}: no softmax beside {weights}; export it with softmax=true "
                "(python export.py ckpt=... out=DIR/weights.hdf5 softmax=true)"
            )
        vocab = vocab_file_for(softmax)
    tokenizer = weights.with_name(TOKENIZER_FILE)
    files = [options, weights, vocab, *([tokenizer] if tokenizer.is_file() else [])]
    copies = {}
    for arm in ARMS:
        copy = work / arm
        copy.mkdir(parents=True, exist_ok=True)
        for path in [*files, *([softmax] if arm == "warm" else [])]:
            link = copy / path.name
            link.unlink(missing_ok=True)
            link.symlink_to(path.resolve())
        copies[arm] = copy
    return copies


def capped_vocab(corpus: Path, size: int, work: Path) -> Path:
    """``work/vocab.txt``: the first ``size`` lines of a prepared corpus's vocabulary (the
    specials, then by descending count), as ``data.vocab_max_size`` cuts one it builds."""
    from elmo_lm.data.corpus import PreparedCorpus
    from elmo_lm.data.vocabulary import Vocabulary
    from elmo_lm.errors import user_errors

    with user_errors():
        prepared = PreparedCorpus.load(corpus, "--corpus")
        if prepared.vocab_file is None:
            raise SystemExit(f"error: --corpus {corpus}: no vocab_file; pass --vocab")
        tokens = Vocabulary.from_file(prepared.vocab_file).tokens[:size]
    Vocabulary(tokens).save(work / "vocab.txt")
    return work / "vocab.txt"


def train_overrides(args, init_from: Path, seed: int, out: Path) -> list[str]:
    """The ``train.py`` command line of one run: ``init_from``, the seed, the corpus and the
    steps; validations at step 0 and every ``args.every`` steps, recorded in ``out/HISTORY``."""
    if args.corpus is not None:
        data = [f"data.corpus={args.corpus}"]
    else:
        data = [f"data.train_files={args.train}", f"data.valid_files={args.valid}"]
    if args.vocab:
        data.append(f"data.vocab_file={args.vocab}")
    elif args.vocab_max_size:
        data.append(f"data.vocab_max_size={args.vocab_max_size}")
    limit = [f"trainer.limit_val_batches={args.val_batches}"] if args.val_batches else []
    return [
        f"hydra.run.dir={out}",
        f"paths.runs_dir={out.parent}",
        "name=bench_finetune",
        f"init_from={init_from}",
        f"seed={seed}",
        f"hardware={args.hardware}",
        *data,
        f"data.batch_size={args.batch_size}",
        f"data.unroll_steps={args.unroll}",
        f"trainer.max_steps={args.steps}",
        "trainer.max_epochs=-1",
        f"trainer.val_check_interval={args.every}",
        "+trainer.check_val_every_n_epoch=null",  # every `every` steps, across epochs
        f"trainer.num_sanity_val_steps={ALL_BATCHES}",  # a full validation before the first step
        *limit,
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "logger=null",
        "callbacks.periodic=null",
        "+callbacks.history._target_=bench_finetune.ValidationHistory",
        f"+callbacks.history.path={out / HISTORY}",
        *args.overrides,
    ]


def run(args, init_from: Path, seed: int, out: Path) -> dict:
    """One fine-tuning run; its held-out perplexity by step and its warm softmax rows."""
    history = out / HISTORY
    history.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)])}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    cmd = [sys.executable, str(ROOT / "train.py"), *train_overrides(args, init_from, seed, out)]
    out.mkdir(parents=True, exist_ok=True)
    log = out / "stderr.log"
    with log.open("w") as err:
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=err, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    if done.returncode != 0:
        tail = "\n".join(text.splitlines()[-20:])
        raise SystemExit(f"train.py failed ({done.returncode}); {log}:\n{tail}")
    rows = (
        [json.loads(line) for line in history.read_text().splitlines()] if history.is_file() else []
    )
    if not rows:
        raise SystemExit(f"{out}: no validation recorded; the corpus needs valid files")
    final = json.loads((out / "metrics.json").read_text())
    assert math.isclose(rows[-1]["val/ppl"], final["val/ppl"], rel_tol=1e-6), (rows[-1], final)
    warm = WARM_ROWS.search(text)
    return {
        "ppl": {row["step"]: row["val/ppl"] for row in rows},
        "warm_rows": [int(warm[1]), int(warm[2])] if warm else None,
    }


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summary(results: dict[str, list[dict]], seeds: list[int]) -> tuple[list[dict], dict]:
    """The table's rows (one per step every run validated at) and the JSON line's numbers."""
    steps = sorted(set.intersection(*(set(r["ppl"]) for arm in ARMS for r in results[arm])))
    rows, means = [], {arm: {} for arm in ARMS}
    for step in steps:
        row = {"step": step}
        for arm in ARMS:
            values = [r["ppl"][step] for r in results[arm]]
            means[arm][step] = geometric_mean(values)
            row[f"{arm} ({', '.join(f's{s}' for s in seeds)})"] = " / ".join(
                f"{v:.2f}" for v in values
            )
        row |= {f"{arm} geo-mean": f"{means[arm][step]:.2f}" for arm in ARMS}
        row["cold / warm"] = f"{means['cold'][step] / means['warm'][step]:.3f}"
        rows.append(row)
    numbers = {
        "steps": steps,
        "seeds": seeds,
        **{arm: [[r["ppl"][s] for s in steps] for r in results[arm]] for arm in ARMS},
        **{f"{arm}_geomean": [means[arm][s] for s in steps] for arm in ARMS},
        "warm_rows": results["warm"][0]["warm_rows"],
    }
    return rows, numbers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="an export with its softmax (init_from=)")
    parser.add_argument("--corpus", type=Path, default=None, help="a prepared corpus directory")
    parser.add_argument("--train", type=Path, default=None)
    parser.add_argument("--valid", type=Path, default=None)
    parser.add_argument("--vocab", type=Path, default=None, help="default: the corpus's")
    parser.add_argument("--vocab-max-size", type=int, default=None, help="the most frequent N")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50, help="steps between validations")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--unroll", type=int, default=20)
    parser.add_argument("--val-batches", type=int, default=None, help="default: all")
    parser.add_argument("--hardware", default="auto", help="conf/hardware/<name>.yaml")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", type=Path, default=None, help="default: a temporary directory")
    parser.add_argument("--overrides", nargs="*", default=[], help="more train.py key=value")
    args = parser.parse_args(argv)
    if (args.corpus is None) == (args.train is None or args.valid is None):
        parser.error("give --corpus DIR, or --train and --valid (not both)")
    if not 0 < args.every <= args.steps:
        parser.error("--every must be between 1 and --steps")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_finetune-"))
    copies = model_copies(args.model, work)
    if args.corpus is not None and args.vocab_max_size and args.vocab is None:
        args.vocab = capped_vocab(args.corpus, args.vocab_max_size, work)
    seeds = list(range(args.seeds))
    results = {arm: [] for arm in ARMS}
    for seed in seeds:
        for arm in ARMS:
            out = work / "runs" / f"{arm}-seed{seed}"
            results[arm].append(run(args, copies[arm], seed, out))
            print(f"{arm} seed {seed}: {results[arm][-1]['ppl']}", file=sys.stderr)
    rows, numbers = summary(results, seeds)
    warm = numbers["warm_rows"]
    print(
        f"held-out perplexity (val/ppl) fine-tuning {args.model} on "
        f"{args.corpus or args.train}, {args.batch_size} x {args.unroll} tokens a step"
        + (f"; {warm[0]} of {warm[1]} softmax rows start warm" if warm else "")
    )
    print(table(rows))
    print(
        json.dumps({"model": str(args.model), "corpus": str(args.corpus or args.train), **numbers})
    )


if __name__ == "__main__":
    main()
