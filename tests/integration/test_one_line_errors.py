"""``python train.py`` with a mistake ends in one ``error:`` line, never Hydra's several lines
(``HYDRA_FULL_ERROR=1`` keeps them) nor, under DDP, one traceback per rank."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, quick_overrides


def train_py(*overrides: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *overrides],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line of a failed run, which printed no traceback and no Hydra hint."""
    assert result.returncode != 0, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    for noise in ("Traceback", "HYDRA_FULL_ERROR", "Error executing job"):
        assert noise not in result.stderr + result.stdout, result.stderr[-3000:]
    return errors[0]


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            "trainer.max_epoch=1",
            "error: trainer.max_epoch=1: no key trainer.max_epoch in the config; did you mean "
            "trainer.max_epochs? (+trainer.max_epoch=1 to add one)",
        ),
        (
            "model=nope",
            "error: model=nope: no conf/model/nope.yaml; use one of "
            + ", ".join(sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))),
        ),
        ("trainer.max_epochs=[1", "error: trainer.max_epochs=[1: not an override ("),
    ],
)
def test_hydra_errors_are_one_line(tmp_path, override, expected):
    line = one_line(train_py(f"paths.runs_dir={tmp_path / 'runs'}", override))
    assert line.startswith(expected)
    assert not (tmp_path / "runs").exists()  # refused before Hydra made a run directory


def test_hydra_full_error_keeps_hydras_output(tmp_path):
    result = train_py(
        f"paths.runs_dir={tmp_path / 'runs'}", "trainer.max_epoch=1", HYDRA_FULL_ERROR="1"
    )
    assert result.returncode != 0
    assert (
        "Traceback" in result.stderr and "Could not override 'trainer.max_epoch'" in result.stderr
    )
    assert "error:" not in result.stderr


def two_sentences(tmp_path: Path) -> list[str]:
    (tmp_path / "two.txt").write_text("the cat sat .\na dog ran .\n")
    return [
        *quick_overrides(tmp_path),
        f"data.train_files={tmp_path / 'two.txt'}",
        "data.valid_files=null",
        "trainer.accelerator=cpu",
    ]


def test_ddp_corpus_smaller_than_the_ranks_names_the_devices(tmp_path):
    line = one_line(train_py(*two_sentences(tmp_path), "trainer.devices=3"))
    assert line == (
        f"error: {tmp_path / 'two.txt'}: 2 training sentences for 3 ranks, each of which reads "
        "its own; use trainer.devices=2 or fewer, or a larger corpus"
    )


def test_ddp_corpus_smaller_than_ranks_x_workers_names_both(tmp_path):
    line = one_line(train_py(*two_sentences(tmp_path), "trainer.devices=2", "data.num_workers=2"))
    assert "4 shares (2 ranks x 2 data-loader workers)" in line
    assert "fewer trainer.devices or data.num_workers (ranks x workers <= 2)" in line


@pytest.mark.parametrize("variable", ["LOCAL_RANK", "RANK", "SLURM_PROCID"])
def test_only_rank_zero_prints_a_user_error(variable):
    code = (
        "from elmo_lm.errors import UserError, user_errors\n"
        "with user_errors():\n"
        "    raise UserError('the true line')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "SLURM_PROCID")}

    def run(rank: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**env, variable: rank},
            capture_output=True,
            text=True,
            timeout=60,
        )

    zero, other = run("0"), run("2")
    assert (zero.returncode, zero.stderr) == (1, "error: the true line\n")
    assert (other.returncode, other.stderr) == (1, "")
