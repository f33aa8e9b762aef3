"""Faults injected for real: a run killed with SIGKILL while writing a checkpoint, a full disk,
a read-only directory; each followed by a resume or rerun that succeeds and finds nothing
half-written."""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import lightning as L
import pytest
import torch

from elmo_lm.commands.export import export
from elmo_lm.errors import OutputError, UserError
from elmo_lm.training.run import train
from tests.helpers import ROOT

# Run in the child: every file opened for binary writing whose first bytes are a zip header
# (what torch.save writes) counts as a checkpoint; the FAULT_NTH-th one gets FAULT_BYTES bytes,
# then the process kills itself with SIGKILL, the file half-written.
KILLER = """
import builtins, os, runpy, signal, sys
real_open, nth, limit, seen = builtins.open, int(os.environ["FAULT_NTH"]), int(os.environ["FAULT_BYTES"]), [0]

class Dying:
    def __init__(self, f):
        self._f, self._n, self._armed = f, 0, None
    def write(self, data):
        if self._armed is None and len(data) >= 4:
            self._armed = bytes(data[:4]) == b"PK\\x03\\x04" and seen.__setitem__(0, seen[0] + 1) is None and seen[0] == nth
        if self._armed and self._n + len(data) >= limit:
            self._f.write(bytes(data[: limit - self._n]))
            self._f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        self._n += len(data)
        return self._f.write(data)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self._f.__exit__(*exc)
    def __getattr__(self, name):
        return getattr(self._f, name)

def dying_open(file, mode="r", *args, **kwargs):
    f = real_open(file, mode, *args, **kwargs)
    return Dying(f) if "w" in mode and "b" in mode else f

builtins.open = dying_open
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
"""


def _train_args(quick_run_overrides, tmp_path: Path, run: str, *overrides: str) -> list[str]:
    return [
        *quick_run_overrides(tmp_path),
        f"hydra.run.dir={tmp_path / 'runs' / run}",
        "trainer.max_epochs=1",  # 17 steps
        "callbacks.periodic.every_n_train_steps=7",
        *overrides,
    ]


def _whole(checkpoints: Path) -> dict[str, int]:
    """Every ``*.ckpt`` read in full (it must load) -> its global step."""
    return {
        p.name: torch.load(p, map_location="cpu", weights_only=True)["global_step"]
        for p in sorted(checkpoints.glob("*.ckpt"))
    }


def test_sigkill_while_writing_a_checkpoint_loses_only_the_steps_since_the_last_one(
    quick_run_overrides, tmp_path
):
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(system_tmp),
        "FAULT_NTH": "2",  # the periodic checkpoint of step 14 (step 7's was the first)
        "FAULT_BYTES": "20000",
        "OMP_NUM_THREADS": "1",
    }
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, *_train_args(quick_run_overrides, tmp_path, "killed")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    checkpoints = tmp_path / "runs" / "killed" / "checkpoints"
    # The half-written checkpoint lies under a temporary name only; every final name loads.
    pieces = list(checkpoints.glob(".*.tmp"))
    assert len(pieces) == 1 and 0 < pieces[0].stat().st_size <= 20000
    assert _whole(checkpoints) == {"latest-step7.ckpt": 7}
    assert (tmp_path / "runs" / "killed" / "vocab.txt").is_file()  # written at the start
    assert list(system_tmp.iterdir()) == []  # nothing staged in the system's temporary dir

    resumed = subprocess.run(
        [
            sys.executable,
            "train.py",
            *_train_args(
                quick_run_overrides,
                tmp_path,
                "resumed",
                f"ckpt_path={tmp_path / 'runs' / 'killed'}",
            ),
            f"data.vocab_file={tmp_path / 'runs' / 'killed' / 'vocab.txt'}",
        ],
        cwd=ROOT,
        env={**env, "FAULT_NTH": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    said = resumed.stdout + resumed.stderr
    assert "resuming from" in said and "latest-step7.ckpt" in said
    assert list(checkpoints.glob(".*.tmp")) == []  # the killed run's piece is removed
    after = _whole(tmp_path / "runs" / "resumed" / "checkpoints")
    assert after["last.ckpt"] == 17 and after["latest-step14.ckpt"] == 14
    assert list(system_tmp.iterdir()) == []


def test_resume_skips_a_newer_checkpoint_that_does_not_load(train_config, tmp_path, caplog):
    run = tmp_path / "runs" / "a"
    train(train_config(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=3", name="a"))
    good = run / "checkpoints" / "last.ckpt"
    # A newer periodic checkpoint cut short, as a copy killed half-way leaves one.
    broken = run / "checkpoints" / "latest-step9.ckpt"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with caplog.at_level("INFO", logger="elmo_lm.training.checkpointing"):
        train(
            train_config(
                tmp_path,
                "trainer.max_epochs=2",
                "trainer.limit_train_batches=3",
                f"ckpt_path={run}",
                name="b",
            )
        )
    assert f"skipping {broken}" in caplog.text and f"resuming from {good}" in caplog.text
    resumed = tmp_path / "runs" / "b" / "checkpoints" / "last.ckpt"
    assert torch.load(resumed, weights_only=True)["global_step"] == 6


@contextlib.contextmanager
def _tmpfs(where: Path, size: str, *options: str):
    """A tmpfs mounted at ``where`` (None where this process may not mount one)."""
    where.mkdir(parents=True, exist_ok=True)
    opts = ",".join([f"size={size}", *options])
    mounted = (
        shutil.which("mount") is not None
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield where if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], check=False)


class FillDisk(L.Callback):
    """Fills the disk that holds ``path`` after ``at_step`` steps (a full disk, for real on a
    tmpfs), or makes every later write there raise ENOSPC where no tmpfs can be mounted."""

    def __init__(self, path: str, at_step: int, real: bool):
        self.path, self.at_step, self.real = Path(path), at_step, real

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step != self.at_step:
            return
        if self.real:
            with open(self.path / "filler", "wb") as f:
                with contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
            return
        real_open, inside = builtins.open, str(self.path)

        def full_open(file, mode="r", *a, **k):
            if "w" in mode and str(file).startswith(inside):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
            return real_open(file, mode, *a, **k)

        builtins.open = full_open
        FillDisk.restore = lambda: setattr(builtins, "open", real_open)


def test_full_disk_while_writing_a_checkpoint_keeps_the_last_whole_one(train_config, tmp_path):
    with _tmpfs(tmp_path / "disk", "6m") as disk:
        runs = disk or tmp_path / "disk"
        overrides = (
            "trainer.max_epochs=1",  # 17 steps
            "callbacks.periodic.every_n_train_steps=7",
            f"paths.runs_dir={runs}",
            f"paths.output_dir={runs / 'full'}",
        )
        try:
            with pytest.raises(OutputError, match="cannot write the checkpoint") as failed:
                train(
                    train_config(
                        tmp_path,
                        *overrides,
                        "+callbacks.fill._target_=tests.integration.test_faults.FillDisk",
                        f"+callbacks.fill.path={runs}",
                        "+callbacks.fill.at_step=8",
                        f"+callbacks.fill.real={disk is not None}",
                    )
                )
        finally:
            getattr(FillDisk, "restore", lambda: None)()
        message = str(failed.value)
        assert "\n" not in message and "latest-step14.ckpt" in message
        assert "No space left on device" in message
        checkpoints = runs / "full" / "checkpoints"
        assert _whole(checkpoints) == {"latest-step7.ckpt": 7}  # 7 steps lost, nothing half
        assert list(checkpoints.glob(".*")) == []
        (runs / "filler").unlink(missing_ok=True)  # space freed: resume
        train(
            train_config(
                tmp_path,
                *overrides[:2],
                f"paths.runs_dir={runs}",
                f"paths.output_dir={runs / 'resumed'}",
                f"ckpt_path={runs / 'full'}",
            )
        )
        assert _whole(runs / "resumed" / "checkpoints")["last.ckpt"] == 17


@contextlib.contextmanager
def _read_only_dir(tmp_path: Path):
    """A directory no one can write in: a read-only tmpfs where one can be mounted, else (root
    ignores permission bits) a path under a regular file."""
    with _tmpfs(tmp_path / "ro", "1m", "ro") as ro:
        if ro is not None:
            yield ro
            return
        if os.geteuid() != 0:
            (tmp_path / "ro").chmod(0o555)
            yield tmp_path / "ro"
            (tmp_path / "ro").chmod(0o755)
            return
        (tmp_path / "file").write_text("")
        yield tmp_path / "file" / "dir"


def test_read_only_run_directory_is_one_line_before_any_work(train_config, tmp_path):
    with _read_only_dir(tmp_path) as ro:
        with pytest.raises(OutputError, match="run directory") as failed:
            train(
                train_config(
                    tmp_path,
                    f"paths.runs_dir={ro}",
                    f"paths.output_dir={ro / 'run'}",
                    "trainer.max_epochs=1",
                )
            )
        assert str(ro) in str(failed.value) and "\n" not in str(failed.value)
    # the same run, given a writable place, succeeds
    train(train_config(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=2"))
    assert (tmp_path / "runs" / "run" / "checkpoints" / "last.ckpt").is_file()


def test_export_refuses_an_unwritable_place_before_reading_and_leaves_no_pair_half(
    train_config, tmp_path
):
    train(train_config(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=2", name="a"))
    ckpt = tmp_path / "runs" / "a" / "checkpoints" / "last.ckpt"
    with _read_only_dir(tmp_path) as ro:
        with pytest.raises(OutputError, match=str(ro)):
            export(ckpt, ro / "weights.hdf5")
    with pytest.raises(OutputError, match="is a directory"):
        export(ckpt, tmp_path)
    # A full disk while writing the options: the old pair stays whole, no temporaries.
    out = tmp_path / "model" / "weights.hdf5"
    export(ckpt, out)
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    real_open = builtins.open

    def full_open(file, mode="r", *a, **k):
        if "w" in mode and "options.json" in str(file):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_open(file, mode, *a, **k)

    builtins.open = full_open
    try:
        with pytest.raises(OutputError, match="options.json.*No space left"):
            export(ckpt, out, overwrite=True)
    finally:
        builtins.open = real_open
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before
    with h5py.File(out, "r") as f:
        assert "char_embed" in f


def test_user_errors_are_one_base_class():
    from elmo_lm.commands.args import ArgumentError
    from elmo_lm.commands.embed import EmbedFileError
    from elmo_lm.data.corpus import CorpusError
    from elmo_lm.data.vocabulary import VocabularyError
    from elmo_lm.embedding.elmo import ElmoError
    from elmo_lm.embedding.token_cache import TokenCacheError
    from elmo_lm.embedding.word_vectors import WordVectorsError
    from elmo_lm.errors import TrainingError
    from elmo_lm.formats.checkpoint import CheckpointError
    from elmo_lm.formats.options import OptionsError
    from elmo_lm.formats.weights_file import WeightsFileError

    for cls in (
        ArgumentError,
        CheckpointError,
        ElmoError,
        EmbedFileError,
        OptionsError,
        TokenCacheError,
        TrainingError,
        CorpusError,
        VocabularyError,
        WeightsFileError,
        WordVectorsError,
        OutputError,
    ):
        assert issubclass(cls, UserError), cls


def test_evaluate_reports_the_oov_rate_and_warns_when_high(train_config, tmp_path, caplog):
    from elmo_lm.commands.evaluate import evaluate

    train(train_config(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=2"))
    ckpt = tmp_path / "runs" / "run" / "checkpoints" / "last.ckpt"
    assert evaluate(ckpt, tmp_path / "valid.txt", device="cpu")["oov_rate"] == 0
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("w1 zz yy xx\nw2 qq\n")
    with caplog.at_level("WARNING", logger="elmo_lm.commands.evaluate"):
        result = evaluate(ckpt, foreign, device="cpu")
    assert result["oov_rate"] == pytest.approx(4 / 6)
    assert "67% of the words" in caplog.text
