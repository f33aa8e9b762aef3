"""A run written before the package moved into its subfolders (tests/fixtures/run_41b864e: the
tiny model, 20 steps on the bundled corpus, written by commit 41b864e) still resumes and loads,
and training gives the trace recorded for it (scripts/training_trace.py; recorded before the move,
and again when the weights' initialisers became the original's, 2026-12-01)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from elmo_lm import Elmo
from elmo_lm.training.config import MOVED_TARGETS, current_targets
from elmo_lm.training.module import ElmoLM
from tests.helpers import FIXTURES, ROOT

RUN = FIXTURES / "run_41b864e"
CKPT = RUN / "checkpoints" / "last.ckpt"


def test_the_seeded_trace_is_the_one_recorded_before_the_move():
    sys.path.insert(0, str(ROOT / "scripts"))
    from training_trace import trace

    recorded = json.loads((FIXTURES / "trace_tiny_20.json").read_text())
    now = trace(20)
    assert now.keys() == recorded.keys()
    for tag, points in recorded.items():
        assert [s for s, _ in now[tag]] == [s for s, _ in points], tag
        # Equal to the last digit on the machine that recorded it; the tolerance is for
        # processors whose kernels.c build (-march=native) rounds differently.
        for (_, got), (_, want) in zip(now[tag], points):
            assert got == pytest.approx(want, rel=1e-4), tag


def test_its_saved_config_names_the_old_targets_and_they_map_to_classes():
    saved = OmegaConf.load(RUN / ".hydra" / "config.yaml")
    assert saved.module._target_ == "elmo_lm.lightning_module.ElmoLM"
    current_targets(saved)
    assert saved.module._target_ == "elmo_lm.training.module.ElmoLM"
    assert saved.data._target_ == "elmo_lm.data.datamodule.ElmoDataModule"
    assert saved.callbacks.progress_bar._target_ == "elmo_lm.training.callbacks.ProgressBar"
    from hydra.utils import get_class

    for new in MOVED_TARGETS.values():
        assert isinstance(get_class(new), type), new


def test_its_checkpoint_loads_as_a_module_and_as_elmo():
    raw = torch.load(CKPT, map_location="cpu", weights_only=True)
    module = ElmoLM.from_checkpoint(CKPT)
    for key, value in module.state_dict().items():
        assert torch.equal(value, raw["state_dict"][key]), key
    elmo = Elmo.from_checkpoint(CKPT, num_output_representations=1, dropout=0.0)
    out = elmo([["The", "cat", "sat", "."]])
    vectors = out["elmo_representations"][0]
    assert vectors.shape == (1, 4, 2 * 8) and torch.isfinite(vectors).all()


def test_its_saved_config_resumes_the_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    resumed = tmp_path / "resumed"
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--config-dir",
            str(run / ".hydra"),
            "--config-name",
            "config",
            f"ckpt_path={run}",
            "trainer.max_epochs=2",
            f"paths.runs_dir={tmp_path / 'runs'}",
            f"hydra.run.dir={resumed}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Restored all states from the checkpoint at {run / 'checkpoints' / 'last.ckpt'}" in (
        result.stderr
    )
    after = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert after["global_step"] == 40 and after["epoch"] == 1  # the second epoch, 0-based
    metrics = json.loads((resumed / "metrics.json").read_text())
    before = json.loads((RUN / "metrics.json").read_text())
    assert math.isfinite(metrics["val/ppl"]) and metrics["val/ppl"] < before["val/ppl"]
