"""Held-out perplexity and training speed against the original trainer (allenai/bilm-tf).

Usage: python bench/bench_peer.py [--steps 600] [--seeds 1 2 3] [--shape mini] [--out DIR]
       python bench/bench_peer.py --kind word      # a word-input biLM (conf/model/word_mini.yaml)
       python bench/bench_peer.py --steps 30 --seeds 1      # a quick look, a few minutes
       python bench/bench_peer.py --from_results /tmp/bench_peer/results.json   # the table again
       python bench/bench_peer.py --rescore /tmp/bench_peer   # score that run's checkpoints again

Both trainers learn the same corpus (default data/fortunes, ``python scripts/make_real_corpus.py``)
with the same vocabulary file (``make_vocab.py`` of the original trainer's tools: ``<S> </S>
<UNK>``, then every training token by count; ``--min_count``, 3 for word inputs, see
``WORD_MIN_COUNT``), the same shape (``conf/model/<shape>.yaml``), batch,
unroll, sampled softmax and number of steps, one seed after another, never two at once.

- The original: ``train_peer.py`` of ../shared/tools/original-trainer (its README), which runs the
  unmodified ``bilm.training.train()`` and then ``test()`` and prints one JSON line; with
  ``--kind word`` (a shape without ``char_cnn``) ``scripts/original_fixtures.py peer``, the same
  procedure over train_peer.py's functions for the original's word-input biLM.
- Ours: ``python train.py`` with overrides (the whole path a user runs, data loading included),
  no validation while training, one checkpoint at the last step; then that checkpoint scored
  on the held-out file (``original_test_ppl``, and ``elmo_lm.commands.evaluate.evaluate``). Everything
  else is
  conf/train.yaml's default, e.g. ``module.reset_state_prob`` (the original never resets a row's
  state; ``--ours_overrides module.reset_state_prob=0`` trains as it does).

Held-out perplexity ("ppl", forward, backward) is the original ``test()``'s for both, on the same
tokens: the held-out text as ``--test_batch_size`` rows that take sentences from one reader in
file order, the LSTM state carried from a zero start, the full softmax, exp of the mean of both
directions' mean losses; the first batch a row cannot fill ends it, so about 13% of the tokens
are not scored ("scored"; ours is checked to cover the same share). "ppl all tokens" is ours on
every token (``evaluate``, sentence i in stream ``i % streams``, as ``val/ppl``); "ppl zero" is
ours with every sentence from a zero state.

"warm ppl" (forward, backward) is the same test on the same tokens, but its rows start from the
state training ended in (held-out row i from training row ``i mod batch``), for both: the
original's through its driver's warm test (``train_peer.py --diag_warm_test``; for word inputs
``original_fixtures.py peer`` runs it), ours from the checkpoint's carried state. Training never
sees a zero state after its first batch, and from one an LM of either trainer may pin its cells
at the clip and score 1e3-1e10 for the rest of the stream (the trainer's README), which swamps
any mean over seeds; the warm test compares the trained models without that.

tokens/s is train_peer.py's definition for both: ``steps * batch * unroll`` over the time from the
first batch in hand to the end of training (the final checkpoint included). "tokens/s after k",
for both, leaves the start out: from the end of step k (``--warmup``) to the end of the last step
whose time the original logs (every 100 steps; the checkpoint not included). "others" is the
CPU that other processes used during a run, in cores (the machine's busy time less this
benchmark's and its runs'): a shared machine slows the trainers down.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from common import table  # noqa: E402

from elmo_lm.commands.evaluate import evaluate  # noqa: E402
from elmo_lm.data.corpus import read_sentences  # noqa: E402
from elmo_lm.data.packing import (  # noqa: E402
    CharIdCache,
    input_ids,
    long_tensor,
    sentence_pairs,
)
from elmo_lm.data.vocabulary import BOS_TOKEN, EOS_TOKEN  # noqa: E402
from elmo_lm.formats.options import BiLMOptions  # noqa: E402
from elmo_lm.training.config import model_options  # noqa: E402
from elmo_lm.training.module import TRAIN_STATES_KEY, ElmoLM  # noqa: E402
from elmo_lm.training.perplexity import perplexities  # noqa: E402

PEER = Path(os.environ.get("ELMO_ORIGINAL_TRAINER", ROOT.parent / "shared/tools/original-trainer"))
PEER_PYTHON = Path(
    os.environ.get("ELMO_ORIGINAL_PYTHON", Path.home() / ".cache/elmo-original-trainer/bin/python")
)
PPL_TARGET = 0.03  # ours within 3% of the original's held-out perplexity
SPEED_TARGET = 2.0  # ours at least twice the original's tokens/s


class StepTimer(L.Callback):
    """Writes to ``path`` the times (``time.perf_counter``) of the first training batch's start,
    every step's end and the end of training, with the tokens of each step."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.first: float | None = None
        self.step_ends: list[float] = []
        self.tokens: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.step_ends.append(time.perf_counter())
        self.tokens.append(int(batch["fwd_targets"].numel()))

    def on_train_end(self, trainer, pl_module) -> None:
        record = {"first": self.first, "end": time.perf_counter(), "step_ends": self.step_ends}
        self.path.write_text(json.dumps({**record, "tokens": self.tokens}))


def shape_options(shape: str) -> BiLMOptions:
    """The biLM of ``conf/model/<shape>.yaml``, read as train.py reads it."""
    return model_options(OmegaConf.load(ROOT / f"conf/model/{shape}.yaml"))


def original_shape_flags(options: BiLMOptions) -> list[str]:
    """train_peer.py's flags for a biLM shape (they mirror options.json)."""
    lstm, cnn = options.lstm, options.char_cnn
    if lstm.cell_clip is None or lstm.proj_clip is None:
        raise SystemExit("train_peer.py always clips: the shape needs cell_clip and proj_clip")
    flags = {
        "lstm_dim": lstm.dim,
        "projection_dim": lstm.projection_dim,
        "n_layers": lstm.n_layers,
        "cell_clip": lstm.cell_clip,
        "proj_clip": lstm.proj_clip,
        "filters": json.dumps(cnn.filters),
        "char_dim": cnn.embedding.dim,
        "n_highway": cnn.n_highway,
        "max_characters_per_token": cnn.max_characters_per_token,
        "activation": cnn.activation,
        "dropout": options.dropout,
    }
    args = [f"--{k}={v}" for k, v in flags.items()]
    return args if lstm.use_skip_connections else [*args, "--no_skip_connections"]


class OthersCPU:
    """Context: ``.cores``, the CPU other processes used meanwhile, in cores (Linux; else None)."""

    def __enter__(self):
        self.start = (time.perf_counter(), _busy_seconds(), _own_cpu_seconds())
        return self

    def __exit__(self, *exc):
        wall, busy, own = (
            b - a
            for a, b in zip(self.start, (time.perf_counter(), _busy_seconds(), _own_cpu_seconds()))
        )
        self.cores = None if math.isnan(busy) else (busy - own) / wall


def _busy_seconds() -> float:
    """Non-idle CPU time of the whole machine since boot, from /proc/stat."""
    try:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, Path("/proc/stat").read_text().split()[1:9]
        )
    except (OSError, ValueError):
        return float("nan")
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU time of this process and its finished children (the trainings)."""
    return sum(
        u.ru_utime + u.ru_stime
        for u in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


def run_logged(cmd: list[str], log: Path, **kwargs) -> str:
    """Runs ``cmd``, its stderr into ``log``; returns its stdout, or exits with the log's tail."""
    with log.open("w") as err:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, **kwargs)
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise SystemExit(f"{cmd[0]} ... failed ({done.returncode}); {log}:\n{tail}")
    return done.stdout


def peer_vocab(train: Path, out: Path, min_count: int = 1) -> Path:
    """``out/vocab.txt`` of the training corpus, by the original trainer's ``make_vocab.py``
    (``<S> </S> <UNK>``, then every training token seen ``min_count`` times, by count), for both
    trainers."""
    vocab = out / "vocab.txt"
    subprocess.run(
        [sys.executable, str(PEER / "make_vocab.py"), str(train), str(vocab), str(min_count)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return vocab


def train_original(args, options: BiLMOptions, vocab: Path, seed: int, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    if options.word_inputs:  # train_peer.py builds a character biLM only
        shape = {k: v for k, v in options.to_dict().items() if k in WORD_SHAPE_KEYS}
        shape["sample_softmax"] = args.softmax == "sampled"
        driver = [
            str(ROOT / "scripts/original_fixtures.py"),
            "peer",
            f"--shape_json={json.dumps(shape)}",
        ]
        flags = []
    else:
        driver = [str(PEER / "train_peer.py"), "--diag_warm_test"]
        flags = original_shape_flags(options)
    cmd = [
        str(PEER_PYTHON),
        *driver,
        f"--train={args.train}",
        f"--valid={args.valid}",
        f"--vocab={vocab}",
        f"--out={out}",
        f"--steps={args.steps}",
        f"--batch_size={args.batch_size}",
        f"--unroll_steps={args.unroll_steps}",
        f"--n_negative_samples={args.n_negative_samples}",
        f"--test_batch_size={args.test_batch_size}",
        f"--seed={seed}",
        *flags,
    ]
    stdout = run_logged(cmd, out / "stderr.log")
    result = json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])
    return {
        "ppl": result["test_ppl"],
        "ppl_fwd": result["test_ppl_forward"],
        "ppl_bwd": result["test_ppl_backward"],
        **{f"warm_{k}": v for k, v in original_warm(result).items()},
        "tokens_per_s": result["tokens_per_s"],
        "tokens_per_s_after_k": rate_after(
            original_step_times(out / "stderr.log"),
            args.warmup,
            args.batch_size * args.unroll_steps,
        ),
        "train_s": result["train_seconds"],
        "steps": result["steps"],
        "scored": result["test_predictions_scored_per_direction"]
        / result["valid_predictions_total_per_direction"],
    }


def original_warm(result: dict) -> dict:
    """ppl, ppl_fwd, ppl_bwd of the original's warm test (its rows start from the state its
    training ended in), from its driver's JSON line; empty where it has none."""
    warm = result.get("warm") or result.get("DIAG_warm_start_test") or {}
    keys = {"ppl": "test_ppl", "ppl_fwd": "test_ppl_forward", "ppl_bwd": "test_ppl_backward"}
    return {k: warm[v] for k, v in keys.items() if v in warm}


WORD_MIN_COUNT = 3
"""The vocabulary of a word-input comparison: tokens seen at least 3 times (13,971 of the
fortunes corpus's 39,908). With every token, the sampled softmax leaves the rows of the rare
tail nearly untrained after hundreds of steps, and the full softmax's held-out perplexity is
theirs: 1e9-5e10 backward for the original at 600 steps, 640-1.7e8 for ours, by seed."""

WORD_SHAPE_KEYS = ("lstm", "dropout", "share_embedding_softmax")
"""What ``scripts/original_fixtures.py peer`` takes of a word-input shape."""


def train_ours(args, shape: str, vocab: Path, seed: int, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    timing = out / "timing.json"
    overrides = [
        f"hydra.run.dir={out}",
        f"paths.runs_dir={out}",
        "name=bench_peer",
        f"model={shape}",
        "hardware=cpu",
        f"data.train_files={args.train}",
        f"data.valid_files={args.valid}",
        f"data.vocab_file={vocab}",
        f"data.batch_size={args.batch_size}",
        f"data.unroll_steps={args.unroll_steps}",
        "data.num_workers=0",
        f"module.softmax={args.softmax}",
        f"module.n_negative_samples={args.n_negative_samples}",
        f"trainer.max_steps={args.steps}",
        "trainer.max_epochs=-1",
        "trainer.limit_val_batches=0",  # held-out perplexity afterwards, as the original
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        # One checkpoint, at the last step, as the original's train() saves at its end.
        f"callbacks.periodic.every_n_train_steps={args.steps}",
        f"seed={seed}",
        "+callbacks.timer._target_=bench_peer.StepTimer",
        f"+callbacks.timer.path={timing}",
        *args.ours_overrides,
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)])}
    cmd = [sys.executable, str(ROOT / "train.py"), *overrides]
    run_logged(cmd, out / "stderr.log", cwd=ROOT, env=env)

    t = json.loads(timing.read_text())
    steps = len(t["step_ends"])
    ckpt = out / "checkpoints" / f"latest-step{steps}.ckpt"
    held_out = evaluate(
        ckpt,
        args.valid,
        batch_size=args.test_batch_size,
        device="cpu",
        unroll_steps=args.unroll_steps,
    )
    as_test, warm = original_test_ppls(ckpt, args.valid, args.test_batch_size, args.unroll_steps)
    return {
        "ppl": as_test["ppl"],
        "ppl_fwd": as_test["ppl_fwd"],
        "ppl_bwd": as_test["ppl_bwd"],
        **{f"warm_{k}": warm[k] for k in ("ppl", "ppl_fwd", "ppl_bwd")},
        "ppl_all_tokens": held_out["ppl"],
        "ppl_zero_state": held_out.get("ppl_zero_state"),
        "tokens_per_s": sum(t["tokens"]) / (t["end"] - t["first"]),
        "tokens_per_s_after_k": rate_after(
            dict(enumerate(t["step_ends"], start=1)), args.warmup, t["tokens"][0]
        ),
        "train_s": t["end"] - t["first"],
        "steps": steps,
        "scored": as_test["scored"],
    }


def original_test_ppl(
    ckpt: Path, valid: Path, batch_size: int, unroll_steps: int, warm: bool = False
) -> dict:
    """Held-out perplexity of our checkpoint on exactly the tokens the original ``test()``
    scores, state carried as there (``bilm/data.py`` ``_get_batch`` at ``unroll_steps=1``):
    ``batch_size`` rows share one reader of the sentences in file order, a row takes the next
    sentence when only the last token of its own is left (rows in order within a batch), and
    the first batch that a row cannot fill ends the test, so that batch and what the other rows
    still held are not scored. ``scored``: the share of held-out targets scored.

    The rows are then scored window by window (``unroll_steps`` tokens; the result does not
    depend on it) from a zero state, with the full softmax, and ``ppl`` is exp of the mean of
    both directions' mean losses, as ``test()`` reports. ``warm``: from the state training ended
    in instead (the checkpoint's carried state; row i starts from training row i mod B), as
    the original's driver's warm test (``train_peer.py --diag_warm_test``) starts its rows.
    """
    return original_test_ppls(ckpt, valid, batch_size, unroll_steps, (warm,))[0]


def original_test_ppls(
    ckpt: Path, valid: Path, batch_size: int, unroll_steps: int, starts=(False, True)
) -> list[dict]:
    """``original_test_ppl`` from each start in ``starts`` (``warm`` False, True), the
    checkpoint read and the held-out batches built once for all."""
    module = ElmoLM.from_checkpoint(ckpt).eval()
    batches, scored = _test_batches(module, valid, batch_size, unroll_steps)
    results = []
    for warm in starts:
        states: dict = {}
        if warm:
            h, c = final_training_state(ckpt)  # (layers, D, B, dim)
            rows = torch.arange(batch_size) % h.shape[2]
            states[0] = (h[:, :, rows].contiguous(), c[:, :, rows].contiguous())
        sums = torch.zeros(4, dtype=torch.float64)
        with torch.inference_mode():
            for i, batch in enumerate(batches):
                sums += module.score_stream_batch({**batch, "reset": i == 0 and not warm}, states)
        results.append({**perplexities(sums), "scored": scored})
    return results


def _test_batches(
    module: ElmoLM, valid: Path, batch_size: int, unroll_steps: int
) -> tuple[list[dict], float]:
    """The held-out windows ``original_test_ppl`` scores, and the share of targets in them."""
    vocab = module.vocab
    rows = {d: [([], []) for _ in range(batch_size)] for d in ("fwd", "bwd")}  # (inputs, targets)
    left = [0] * batch_size  # pairs left in each row's current sentence
    sentences = list(read_sentences(valid))
    total = sum(len(words) + 1 for words in sentences)  # targets per direction
    reader = iter(sentences)
    steps = 0  # complete batches of one pair per row

    def fill(row: int) -> bool:
        """Gives the row its next sentence; False when there is none."""
        words = next(reader, None)
        if words is None:
            return False
        ids = vocab.encode([BOS_TOKEN, *words, EOS_TOKEN])
        for d in ("fwd", "bwd"):
            x, y = sentence_pairs(words, ids, reverse=d == "bwd")
            rows[d][row][0].extend(x)
            rows[d][row][1].extend(y)
        left[row] = len(words) + 1
        return True

    while all(left[row] > 0 or fill(row) for row in range(batch_size)):
        left = [n - 1 for n in left]
        steps += 1
    max_chars = module.options.loader_characters  # None: a word-input LM reads no char ids
    chars = CharIdCache(max_chars) if max_chars is not None else None
    batches = []
    for start in range(0, steps, unroll_steps):
        end = min(steps, start + unroll_steps)
        pad = unroll_steps - (end - start)
        batch = {"stream_id": 0}
        for d in ("fwd", "bwd"):
            inputs = [x[start:end] + [""] * pad for x, _ in rows[d]]
            if chars is not None:
                batch[f"{d}_chars"] = chars(inputs)
            batch[f"{d}_ids"] = long_tensor([input_ids(vocab, row) for row in inputs])
            batch[f"{d}_targets"] = torch.tensor(
                [y[start:end] + [-1] * pad for _, y in rows[d]], dtype=torch.long
            )
        batches.append(batch)
    return batches, steps * batch_size / total


def final_training_state(ckpt: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The LSTM state (h, c) the run's only training stream ended in, from its checkpoint."""
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)[TRAIN_STATES_KEY]
    streams = saved["ranks"][0]
    if saved["world_size"] != 1 or len(streams) != 1:
        raise SystemExit(f"{ckpt}: not a one-process run with one training stream")
    return next(iter(streams.values()))


def rescore(args) -> dict:
    """Scores again the last checkpoint of each of our runs under ``args.rescore`` (held-out
    perplexity as ``train_ours`` scores it now) and writes the results back."""
    path = args.rescore / "results.json"
    results = json.loads(path.read_text())
    for seed, r in results["ours"].items():
        ckpt = args.rescore / f"ours/seed{seed}/checkpoints/latest-step{r['steps']}.ckpt"
        as_test, warm = original_test_ppls(
            ckpt, args.valid, args.test_batch_size, args.unroll_steps
        )
        if "ppl_all_tokens" not in r:
            r["ppl_all_tokens"] = r["ppl"]
        r.update({k: as_test[k] for k in ("ppl", "ppl_fwd", "ppl_bwd", "scored")})
        r.update({f"warm_{k}": warm[k] for k in ("ppl", "ppl_fwd", "ppl_bwd")})
    path.write_text(json.dumps(results, indent=1) + "\n")
    return results


def original_step_times(log: Path) -> dict[int, float]:
    """Step -> seconds of the original's training loop, from its log's ``Batch <step>, ...``
    and ``Total time: <s>`` lines (every 100 steps)."""
    times, step = {}, None
    for line in log.read_text().splitlines():
        if line.startswith("Batch "):
            step = int(line.split()[1].rstrip(","))
        elif line.startswith("Total time: ") and step is not None:
            times[step] = float(line.split()[2])
    return times


def rate_after(times: dict[int, float], k: int, tokens_per_step: int) -> float | None:
    """Tokens/s from the end of step k to the end of the last step that is a multiple of 100
    (the original's log's steps); None when there is no such window."""
    end = max((step for step in times if step % 100 == 0), default=0)
    if k not in times or end <= k:
        return None
    return (end - k) * tokens_per_step / (times[end] - times[k])


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def run_row(trainer: str, seed, r: dict, warmup: int) -> dict:
    return {
        "trainer": trainer,
        "seed": seed,
        "steps": r.get("steps", "-"),
        "ppl": fmt(r["ppl"], 2),
        "ppl fwd": fmt(r["ppl_fwd"], 2),
        "ppl bwd": fmt(r["ppl_bwd"], 2),
        "warm ppl": fmt(r.get("warm_ppl"), 2),
        "warm fwd": fmt(r.get("warm_ppl_fwd"), 2),
        "warm bwd": fmt(r.get("warm_ppl_bwd"), 2),
        "ppl all tokens": fmt(r.get("ppl_all_tokens"), 2),
        "ppl zero": fmt(r.get("ppl_zero_state"), 1),
        "scored": fmt(100 * r["scored"], 0) + "%" if "scored" in r else "-",
        "tokens/s": fmt(r["tokens_per_s"], 0),
        f"tokens/s after {warmup}": fmt(r.get("tokens_per_s_after_k"), 0),
        "train s": fmt(r.get("train_s"), 1),
        "others": fmt(r.get("others_cores"), 2),
    }


KEYS = (
    "ppl",
    "ppl_fwd",
    "ppl_bwd",
    "warm_ppl",
    "warm_ppl_fwd",
    "warm_ppl_bwd",
    "ppl_zero_state",
    "tokens_per_s",
    "tokens_per_s_after_k",
)


def summary(runs: list[dict], how, at_least: int = 1) -> dict:
    """``how`` (mean, stdev) of each quantity over the runs that have it (None: too few)."""
    values = {k: [r[k] for r in runs if r.get(k) is not None] for k in KEYS}
    return {k: how(v) if len(v) >= at_least else None for k, v in values.items()}


def _geometric_mean(values) -> float:
    """The geometric mean over seeds (perplexities compare as ratios)."""
    return statistics.geometric_mean([v for v in values if v > 0])


def report(results: dict[str, dict[int, dict]], warmup: int) -> str:
    """The table of every run, each trainer's mean, median and sd over seeds, and the ratios."""
    rows = [run_row(t, seed, r, warmup) for t, runs in results.items() for seed, r in runs.items()]
    stats = {}
    for trainer, runs in results.items():
        runs = list(runs.values())
        # The median too: one seed whose zero-state start blows up dominates a mean of three.
        stats[trainer] = {
            "mean": summary(runs, statistics.mean),
            "median": summary(runs, statistics.median),
            "geomean": summary(runs, _geometric_mean),
            "sd": summary(runs, statistics.stdev, at_least=2),
        }
        rows += [run_row(trainer, name, v, warmup) for name, v in stats[trainer].items()]
    text = table(rows, list(rows[0]))
    if set(stats) != {"ours", "original"}:
        return text
    ours, orig = stats["ours"], stats["original"]
    ratios = []
    for key, label in (
        ("ppl", "ppl"),
        ("ppl_fwd", "ppl fwd"),
        ("ppl_bwd", "ppl bwd"),
        ("warm_ppl", "warm ppl"),
        ("warm_ppl_fwd", "warm fwd"),
        ("warm_ppl_bwd", "warm bwd"),
        ("tokens_per_s", "tokens/s"),
    ):
        if any(s[how][key] is None for s in (ours, orig) for how in ("mean", "median")):
            continue  # e.g. an earlier run's results without the warm test
        r = {how: ours[how][key] / orig[how][key] for how in ("mean", "median", "geomean")}
        if key == "tokens_per_s":
            target, met = f">= {SPEED_TARGET:g}x", {h: v >= SPEED_TARGET for h, v in r.items()}
        else:
            target = f"within {100 * PPL_TARGET:g}%"
            met = {h: abs(v - 1) <= PPL_TARGET for h, v in r.items()}
        ratios.append(
            {
                "ours / original": label,
                "of means": f"{r['mean']:.3f}",
                "of medians": f"{r['median']:.3f}",
                "of geometric means": f"{r['geomean']:.3f}",
                "target": target,
                "met (means, medians, geometric)": ", ".join(
                    "yes" if m else "no" for m in met.values()
                ),
            }
        )
    return text + "\n\n" + table(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=ROOT / "data/fortunes/train.txt")
    parser.add_argument("--valid", type=Path, default=ROOT / "data/fortunes/valid.txt")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--unroll_steps", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--n_negative_samples", type=int, default=8192)
    parser.add_argument("--test_batch_size", type=int, default=256, help="held-out streams")
    parser.add_argument(
        "--min_count",
        type=int,
        default=None,
        help=f"vocabulary: tokens seen this often (default 1; {WORD_MIN_COUNT} for word inputs)",
    )
    parser.add_argument("--shape", default=None, help="a conf/model/<shape>.yaml (mini)")
    parser.add_argument(
        "--kind", choices=("char", "word"), default="char", help="word: word_mini, no char CNN"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=100,
        help="steps before 'tokens/s after k' (a multiple of 100)",
    )
    parser.add_argument(
        "--softmax",
        choices=("sampled", "full"),
        default="sampled",
        help="full: both train with the full softmax (word inputs only: train_peer.py samples)",
    )
    parser.add_argument("--skip_original", action="store_true")
    parser.add_argument("--skip_ours", action="store_true")
    parser.add_argument(
        "--ours_overrides", nargs="*", default=[], help="more train.py key=value overrides"
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_peer"), help="work directory")
    parser.add_argument(
        "--from_results", type=Path, help="print the table of an earlier run's results.json"
    )
    parser.add_argument(
        "--rescore",
        type=Path,
        help="an earlier run's --out: score its checkpoints of ours again, then print the table",
    )
    args = parser.parse_args()
    if args.from_results:
        print(report(json.loads(args.from_results.read_text()), args.warmup))
        return
    if args.rescore:
        print(report(rescore(args), args.warmup))
        return
    args.train, args.valid, args.out = (
        args.train.resolve(),
        args.valid.resolve(),
        args.out.resolve(),
    )
    for path in (args.train, args.valid):
        if not path.is_file():
            raise SystemExit(
                f"{path}: no such corpus file; make it with scripts/make_real_corpus.py"
            )
    if not (PEER / "make_vocab.py").is_file():
        raise SystemExit(f"{PEER}: not the original trainer's tools; set ELMO_ORIGINAL_TRAINER")
    if not args.skip_original and not PEER_PYTHON.is_file():
        raise SystemExit(
            f"{PEER_PYTHON}: no original trainer; run {PEER}/setup.sh (or --skip_original)"
        )

    args.shape = args.shape or ("word_mini" if args.kind == "word" else "mini")
    options = shape_options(args.shape)
    if args.softmax == "full" and not options.word_inputs:
        raise SystemExit("--softmax full: train_peer.py trains its character biLM sampled only")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.min_count is None:
        args.min_count = WORD_MIN_COUNT if options.word_inputs else 1
    vocab = peer_vocab(args.train, args.out, args.min_count)
    n_vocab = sum(1 for _ in vocab.open())
    print(
        f"corpus {args.train} ({n_vocab:,} vocabulary, min count {args.min_count}), held out {args.valid}; shape {args.shape}; "
        f"{args.steps} steps of {args.batch_size} x {args.unroll_steps}, "
        f"{args.n_negative_samples} negatives; ours also {' '.join(args.ours_overrides) or '-'}",
        flush=True,
    )

    results: dict[str, dict[int, dict]] = {"original": {}, "ours": {}}
    for seed in args.seeds:
        if not args.skip_original:
            with OthersCPU() as others:
                r = train_original(args, options, vocab, seed, args.out / f"original/seed{seed}")
            r["others_cores"] = others.cores
            results["original"][seed] = r
            print(f"original seed {seed}: {json.dumps(r)}", flush=True)
        if not args.skip_ours:
            with OthersCPU() as others:
                r = train_ours(args, args.shape, vocab, seed, args.out / f"ours/seed{seed}")
            r["others_cores"] = others.cores
            results["ours"][seed] = r
            print(f"ours seed {seed}: {json.dumps(r)}", flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"runs in {args.out}\n")
    print(report({t: runs for t, runs in results.items() if runs}, args.warmup))


if __name__ == "__main__":
    main()
