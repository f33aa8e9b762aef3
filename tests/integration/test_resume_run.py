"""``python train.py ckpt_path=<run dir>`` alone continues that run: its own overrides (corpus,
vocabulary, trainer limits, callbacks) composed again, in its directory and TensorBoard run, to
where an uninterrupted run ends; a change of its data or model is refused in one line."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import lightning as L
import torch

from tests.helpers import FIXTURES, ROOT, quick_overrides, run_train_py

KILL_AT = "ELMO_TEST_KILL_AT"


class KillAt(L.Callback):
    """SIGKILLs the process at the start of step ``$ELMO_TEST_KILL_AT`` (``kill -9``); does
    nothing without it, so that the resumed run, composed with the same callback, goes on."""

    def on_train_batch_start(self, trainer, *args):
        if os.environ.get(KILL_AT) and trainer.global_step == int(os.environ[KILL_AT]):
            os.kill(os.getpid(), signal.SIGKILL)


def _train(*argv: str, kill_at: int | None = None) -> subprocess.CompletedProcess:
    return run_train_py(*argv, env={KILL_AT: None if kill_at is None else str(kill_at)})


def _first_run(tmp_path: Path, run: Path, *extra: str, kill_at: int | None = None):
    return _train(
        *quick_overrides(tmp_path),
        f"hydra.run.dir={run}",
        "trainer.max_epochs=2",  # 2 x 17 steps; the default is 3
        "callbacks.periodic.every_n_train_steps=7",
        "+callbacks.kill._target_=tests.integration.test_resume_run.KillAt",
        *extra,
        kill_at=kill_at,
    )


def _readme_resume_line() -> str:
    """The resume command as the README gives it."""
    lines = re.findall(
        r"`(python train\.py ckpt_path=<run dir>)`", (ROOT / "README.md").read_text()
    )
    assert lines, "README.md gives no `python train.py ckpt_path=<run dir>`"
    return lines[0]


def _final(run: Path) -> tuple[int, float]:
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return last["global_step"], json.loads((run / "metrics.json").read_text())["val/ppl"]


def test_the_readme_resume_line_after_kill_9_continues_the_same_run(tmp_path):
    whole = tmp_path / "whole"
    done = _first_run(tmp_path, whole)
    assert done.returncode == 0, done.stderr[-3000:]

    run = tmp_path / "killed"
    killed = _first_run(tmp_path, run, kill_at=10)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    overrides = (run / ".hydra" / "overrides.yaml").read_bytes()
    events = sorted(p.name for p in (run / "tensorboard").iterdir())

    # The same checkpoint resumed the explicit way (every override again, into another
    # directory): what the README's line must give exactly.
    explicit = tmp_path / "explicit"
    given = _first_run(
        tmp_path,
        explicit,
        f"ckpt_path={run / 'checkpoints' / 'latest-step7.ckpt'}",
        f"data.vocab_file={run / 'vocab.txt'}",
    )
    assert given.returncode == 0, given.stderr[-3000:]

    # Tried as written, with nothing else on the command line.
    argv = _readme_resume_line().replace("<run dir>", str(run)).split()[2:]
    resumed = _train(*argv)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = resumed.stdout + resumed.stderr
    assert f"resuming from {run / 'checkpoints' / 'latest-step7.ckpt'}" in said
    assert f"resume it: python train.py ckpt_path={run}" in said
    # The same corpus, vocabulary and max_epochs, to where the uninterrupted run ends: the same
    # steps, and the perplexity of the same checkpoint resumed explicitly and of the
    # uninterrupted run, exactly (the checkpoint carries the streams' LSTM states; on CPU the
    # same steps give the same bits).
    steps, ppl = _final(run)
    assert steps == _final(whole)[0] == 34
    assert ppl == _final(explicit)[1]
    assert ppl == _final(whole)[1]
    assert (run / "vocab.txt").read_text() == (whole / "vocab.txt").read_text()
    # In the same directory and TensorBoard run; nothing under runs/ (Hydra's default).
    assert not list((tmp_path).glob("runs/**/checkpoints"))
    tensorboard = sorted(p.name for p in (run / "tensorboard").iterdir())
    assert all(p.startswith("events.") or p == "hparams.yaml" for p in tensorboard), tensorboard
    assert set(events) < set(tensorboard)
    # The first run's overrides are kept as it wrote them.
    assert (run / ".hydra" / "overrides.yaml").read_bytes() == overrides


def test_a_changed_corpus_is_refused_in_one_line_and_allowed_with_allow_changes(tmp_path):
    run = tmp_path / "a"
    first = _first_run(tmp_path, run, "trainer.max_epochs=1", "trainer.limit_train_batches=3")
    assert first.returncode == 0, first.stderr[-3000:]
    other = tmp_path / "other.txt"
    other.write_text("w1 w2 w3 w4\nw5 w6 w7 w8 w9\n" * 40)

    refused = _train(f"ckpt_path={run}", f"data.train_files={other}")
    assert refused.returncode == 1
    lines = refused.stderr.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), refused.stderr[-3000:]
    assert "data.train_files" in lines[0] and "allow_changes=true" in lines[0]
    assert "init_from=" in lines[0]
    refused = _train(f"ckpt_path={run}", "model=mini")
    assert (
        refused.returncode == 1 and "model" in refused.stderr and "allow_changes" in refused.stderr
    )

    allowed = _train(
        f"ckpt_path={run}",
        f"data.train_files={other}",
        "allow_changes=true",
        "trainer.max_epochs=2",
    )
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 6  # 3 more steps, on the new corpus


def test_a_run_saved_before_the_package_moved_resumes_from_its_directory(tmp_path):
    run = tmp_path / "run_41b864e"
    shutil.copytree(FIXTURES / "run_41b864e", run)
    overrides = (run / ".hydra" / "overrides.yaml").read_bytes()
    resumed = _train(f"ckpt_path={run}", "trainer.max_epochs=2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert after["global_step"] == 40 and after["epoch"] == 1
    assert (run / ".hydra" / "overrides.yaml").read_bytes() == overrides
    assert f"resume it: python train.py ckpt_path={run}" in resumed.stdout + resumed.stderr
