"""Pictures: a run's perplexity curve from its TensorBoard events, word senses in 2-D."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml
from torch.utils.tensorboard import SummaryWriter

from elmo_lm.commands.plot import (
    PlotError,
    WordSenses,
    main,
    pca_2d,
    plot_curves,
    plot_senses,
    read_curves,
)
from elmo_lm.errors import MissingExtraError
from elmo_lm.training.run import train
from tests.helpers import ROOT, png_size


def _events(run, steps=20, batch_size=8, unroll_steps=10, world_size=2):
    """TensorBoard events with the tags and hparams.yaml that train.py's logger writes."""
    events = run / "tensorboard"
    writer = SummaryWriter(str(events))
    for step in range(1, steps, 2):
        writer.add_scalar("train/ppl", 100.0 / (1 + step), step)
    writer.add_scalar("val/ppl", 9.0, 9)
    writer.add_scalar("val/ppl", 5.0, steps - 1)
    writer.close()
    hp = {"options/batch_size": batch_size, "options/unroll_steps": unroll_steps}
    (events / "hparams.yaml").write_text(yaml.safe_dump({**hp, "world_size": world_size}))
    return events


def test_curves_are_perplexity_against_tokens_seen(tmp_path):
    _events(tmp_path)
    curves = read_curves(tmp_path)
    assert curves.tokens_per_step == 8 * 10 * 2
    x, ppl = curves.points["training"]
    np.testing.assert_array_equal(x, (np.arange(1, 20, 2) + 1) * 160)  # step s: s + 1 batches
    np.testing.assert_allclose(ppl, 100.0 / (1 + np.arange(1, 20, 2)), rtol=1e-6)
    x, ppl = curves.points["validation"]
    np.testing.assert_array_equal(x, [10 * 160, 20 * 160])
    np.testing.assert_array_equal(ppl, [9.0, 5.0])
    # the events file itself, or the tensorboard directory, name the same run
    events = next((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert read_curves(events).points.keys() == curves.points.keys()


@pytest.mark.parametrize("size", [(640, 400), (300, 200)])
def test_curve_png_has_the_size_asked(tmp_path, size):
    _events(tmp_path)
    out = plot_curves(tmp_path, tmp_path / "curve.png", size)
    assert out.stat().st_size > 1000 and png_size(out) == size


def test_curve_without_hparams_is_against_steps_and_svg_works(tmp_path):
    (_events(tmp_path) / "hparams.yaml").unlink()
    assert read_curves(tmp_path).tokens_per_step is None
    out = plot_curves(tmp_path, tmp_path / "curve.svg")
    assert out.read_text().lstrip().startswith("<?xml") and "training steps" in out.read_text()


def test_plot_command(tmp_path, capsys):
    _events(tmp_path)
    main([f"run={tmp_path}", f"out={tmp_path / 'c.png'}", "width=500", "height=300"])
    assert png_size(tmp_path / "c.png") == (500, 300)
    assert capsys.readouterr().err.strip() == f"wrote {tmp_path / 'c.png'}"


def test_bad_runs_and_outputs_are_one_line_errors(tmp_path):
    with pytest.raises(PlotError, match="no TensorBoard events under it"):
        plot_curves(tmp_path, tmp_path / "c.png")
    with pytest.raises(PlotError, match="no such directory"):
        plot_curves(tmp_path / "missing", tmp_path / "c.png")
    _events(tmp_path / "a")
    _events(tmp_path / "b")
    with pytest.raises(PlotError, match="holds the events of 2 runs"):
        plot_curves(tmp_path, tmp_path / "c.png")
    with pytest.raises(PlotError, match=r"cannot write \.jpgx"):
        plot_curves(tmp_path / "a", tmp_path / "c.jpgx")
    with pytest.raises(PlotError, match="at least 100x100"):
        plot_curves(tmp_path / "a", tmp_path / "c.png", (50, 400))
    empty = tmp_path / "empty" / "tensorboard"
    SummaryWriter(str(empty)).close()
    with pytest.raises(PlotError, match="no train/ppl or val/ppl"):
        plot_curves(empty.parent, tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_without_matplotlib_one_line_naming_the_extra(tmp_path, monkeypatch):
    _events(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError) as info:
        plot_curves(tmp_path, tmp_path / "c.png")
    assert str(info.value) == (
        'drawing a plot needs matplotlib, which is not installed; pip install -e ".[plot]"'
    )


def test_pca_separates_clusters_and_projects_the_static_vector():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.1, (10, 6)) + np.eye(6)[0] * 5
    b = rng.normal(0, 0.1, (10, 6)) - np.eye(6)[0] * 5
    points, static, share = pca_2d(np.vstack([a, b]), np.zeros((1, 6)))
    assert (np.sign(points[:10, 0]) == -np.sign(points[10:, 0])).all()
    assert share[0] > 0.95 and static.shape == (1, 2)
    np.testing.assert_allclose(static, [[0, 0]], atol=0.1)  # the static vector: the mean here
    points, _, share = pca_2d(np.ones((1, 6)))  # one occurrence: a point, no crash
    assert points.shape == (1, 2) and share.shape == (2,)


def test_senses_png(tmp_path):
    rng = np.random.default_rng(0)
    words = [
        WordSenses(w, rng.normal(size=(12, 16)), ["a"] * 6 + ["b"] * 6, rng.normal(size=16))
        for w in ("bank", "bat", "plant", "spring", "mouse")
    ]
    out = plot_senses(words, tmp_path / "senses.png", size=(900, 500))
    assert out.stat().st_size > 1000 and png_size(out) == (900, 500)
    with pytest.raises(PlotError, match="no word to plot"):
        plot_senses([], tmp_path / "none.png")


@pytest.mark.slow
def test_curve_of_a_real_run(train_config, tmp_path):
    """Tags, steps and hparams as a real training run logs them."""
    cfg = train_config(tmp_path, "trainer.max_epochs=2", "trainer.log_every_n_steps=2")
    train(cfg)
    run = tmp_path / "runs" / "run"
    curves = read_curves(run)
    # 200 sentences of 5 words + 2 boundaries per epoch, batch 8 x 10 -> 17 steps of 80 tokens
    assert curves.tokens_per_step == 80
    x, ppl = curves.points["validation"]
    np.testing.assert_array_equal(x, [17 * 80, 34 * 80])
    assert ppl[-1] < curves.points["training"][1][0]
    out = plot_curves(run, tmp_path / "curve.png", (640, 400))
    assert png_size(out) == (640, 400)


@pytest.mark.slow
def test_plot_py_runs_as_a_script(tmp_path):
    _events(tmp_path)
    result = subprocess.run(
        [sys.executable, str(ROOT / "plot.py"), f"run={tmp_path}", f"out={tmp_path / 'c.png'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert png_size(tmp_path / "c.png") == (800, 500)
