"""The sense probe callback (``+probe=wsd``): its config, its cadence and rank rule, that it
leaves the module as it found it, and a run that logs the probe beside the perplexity."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate

from elmo_lm.commands.plot import plot_metrics, read_scalars
from elmo_lm.errors import TrainingError, user_errors
from elmo_lm.training.module import ElmoLM
from elmo_lm.training.probe_callback import SenseProbe, metric_name
from elmo_lm.training.run import train
from tests.helpers import (
    SCORER_VOCAB,
    one_line_error,
    png_size,
    require_wordnet,
    tiny_options_with,
)

NAMES = ["probe/wsd_layer0", "probe/wsd_layer1", "probe/wsd_layer2", "probe/wsd_average"]


@pytest.fixture(scope="module")
def wordnet():
    return require_wordnet()


def module_logging_to(logged: list) -> ElmoLM:
    torch.manual_seed(0)
    module = ElmoLM(tiny_options_with().to_dict(), SCORER_VOCAB, softmax="full")
    module.log = lambda name, value, **kwargs: logged.append((name, value, kwargs))
    return module


def trainer(rank: int = 0, sanity: bool = False):
    return SimpleNamespace(is_global_zero=rank == 0, sanity_checking=sanity)


def test_the_config_turns_it_on(train_config, tmp_path):
    cfg = train_config(tmp_path, "+probe=wsd", "callbacks.probe.every_n_validations=3")
    probe = instantiate(cfg.callbacks.probe)
    assert isinstance(probe, SenseProbe)
    assert (probe.every_n_validations, probe.max_lemmas, probe.seed) == (3, 100, 0)
    assert "probe" not in train_config(tmp_path).callbacks  # opt-in


def test_metric_names():
    assert [metric_name(n) for n in ("layer_0", "layer_1", "layer_2", "average")] == NAMES


def test_every_n_validations_on_rank_zero_and_the_module_is_left_as_it_was(wordnet):
    logged = []
    module = module_logging_to(logged)
    module.train()
    before = [p.detach().clone() for p in module.bilm.parameters()]
    probe = SenseProbe(every_n_validations=2, max_lemmas=4)
    probe.on_fit_start(trainer(), module)
    assert len(probe.data.lemmas) == 4
    probe.on_validation_epoch_end(trainer(sanity=True), module)  # not counted
    for _ in range(4):
        probe.on_validation_epoch_end(trainer(), module)
    assert [name for name, _, _ in logged] == NAMES * 2  # the 2nd and the 4th validation
    assert all(kwargs == {"rank_zero_only": True} for _, _, kwargs in logged)
    assert all(0 <= value <= 1 for _, value, _ in logged)
    assert module.bilm.training
    assert all(p.requires_grad and p.grad is None for p in module.bilm.parameters())
    for a, b in zip(before, module.bilm.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert probe.state_dict() == {"validations": 4}
    resumed = SenseProbe(every_n_validations=2)
    resumed.load_state_dict(probe.state_dict())
    assert resumed.validations == 4


def test_other_ranks_skip_it(wordnet):
    logged = []
    module = module_logging_to(logged)
    probe = SenseProbe(max_lemmas=4)
    probe.on_fit_start(trainer(rank=1), module)
    probe.on_validation_epoch_end(trainer(rank=1), module)
    assert probe.data is None and logged == [] and probe.validations == 1


def test_bad_settings_are_one_line():
    message = one_line_error(TrainingError, lambda: SenseProbe(every_n_validations=0))
    assert message.startswith("callbacks.probe: every_n_validations")


def test_no_wordnet_stops_the_run_in_one_line(train_config, tmp_path, monkeypatch):
    monkeypatch.setenv("WORDNET_DIR", str(tmp_path))
    cfg = train_config(tmp_path, "+probe=wsd", "trainer.max_steps=2")
    with pytest.raises(SystemExit) as exc, user_errors():
        train(cfg)
    assert exc.value.code.startswith(f"error: {tmp_path}: no WordNet database")
    assert "apt-get install wordnet-base" in exc.value.code and "\n" not in exc.value.code


@pytest.mark.slow
def test_a_run_logs_the_probe_at_each_validation_and_plot_draws_it(wordnet, train_config, tmp_path):
    cfg = train_config(
        tmp_path,
        "+probe=wsd",
        "callbacks.probe.max_lemmas=5",
        "trainer.max_steps=20",
        "trainer.val_check_interval=5",
        "trainer.limit_val_batches=1",
    )
    metrics = train(cfg)
    assert set(NAMES) <= set(metrics)
    run = tmp_path / "runs" / "run"
    assert set(NAMES) <= set(json.loads((run / "metrics.json").read_text()))
    scalars = read_scalars(run / "tensorboard")
    steps, values = scalars["probe/wsd_layer1"]
    assert steps.tolist() == scalars["val/ppl"][0].tolist() and len(steps) >= 3
    out = plot_metrics(run, "probe/*", tmp_path / "probe.png", size=(600, 400))
    assert png_size(out) == (600, 400)


def test_plot_draws_logged_tags_against_steps(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from elmo_lm.commands.plot import PlotError

    with SummaryWriter(str(tmp_path / "tensorboard")) as writer:
        for step in (9, 19, 29):
            writer.add_scalar("val/ppl", 50.0 / (step + 1), step)
            for k, name in enumerate(NAMES):
                writer.add_scalar(name, 0.3 + 0.01 * k + step / 1000, step)
    scalars = read_scalars(tmp_path / "tensorboard")
    assert scalars["probe/wsd_layer1"][0].tolist() == [9, 19, 29]
    assert scalars["probe/wsd_layer1"][1] == pytest.approx([0.319, 0.329, 0.339])
    out = plot_metrics(tmp_path, "probe/wsd_layer1,probe/wsd_layer2", tmp_path / "a.png")
    assert png_size(out) == (800, 500)
    assert png_size(plot_metrics(tmp_path, ["probe/*"], tmp_path / "b.png")) == (800, 500)
    message = one_line_error(
        PlotError, lambda: plot_metrics(tmp_path, "probe/x", tmp_path / "c.png")
    )
    assert message.startswith("metrics=probe/x: not logged in")
    assert "probe/wsd_average, probe/wsd_layer0" in message
