"""Every file in conf/ composes, and its trainer, data module and module instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from elmo_lm.data.datamodule import ElmoDataModule
from elmo_lm.errors import TrainingError
from elmo_lm.model.bilm import BiLM
from elmo_lm.training.config import model_options, module_arguments, run_options
from elmo_lm.training.module import ElmoLM
from tests.helpers import ROOT

CONF = ROOT / "conf"
TINY_VOCAB = ["<S>", "</S>", "<UNK>", "the", "cat", "sat"]


def options_of(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_train(overrides: list[str], tmp_path: Path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[f"paths.root={ROOT}", f"paths.output_dir={tmp_path}", *overrides],
        )


def instantiate_all(cfg, tmp_path: Path, vocab=TINY_VOCAB):
    """The trainer (on CPU), the data module and the module of a composed config."""
    cfg = cfg.copy()
    if not torch.cuda.is_available():  # GPU configs: check them on CPU
        cfg.trainer.accelerator = "cpu"
        cfg.trainer.devices = 1
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    logger = instantiate(cfg.logger)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger)
    datamodule = instantiate(cfg.data)
    options = run_options(model_options(cfg.model), cfg, len(vocab), n_train_tokens=0)
    module = instantiate(
        module_arguments(cfg), options=options.to_dict(), vocab=vocab, _convert_="all"
    )
    return trainer, datamodule, module


def test_groups_hold_the_required_options():
    assert {"tiny", "small", "medium", "original"} <= set(options_of("model"))
    assert {"cpu", "gpu", "multi_gpu", "multi_node"} <= set(options_of("hardware"))
    assert "small_corpus" in options_of("experiment")
    assert "sample" in options_of("data")


def test_default_config_instantiates(tmp_path):
    cfg = compose_train(["model=tiny"], tmp_path)
    trainer, datamodule, module = instantiate_all(cfg, tmp_path)
    assert isinstance(datamodule, ElmoDataModule) and isinstance(module, ElmoLM)
    assert trainer.max_epochs == cfg.trainer.max_epochs
    assert cfg.module.lr == 0.2 and cfg.module.initial_accumulator_value == 1.0
    assert cfg.module.clip_norm == 10.0 and cfg.module.n_negative_samples == 8192
    assert not module.sampled  # 6 tokens <= 8192 negatives: full softmax


@pytest.mark.parametrize("name", options_of("model"))
def test_model_configs_are_options(name, tmp_path):
    cfg = compose_train([f"model={name}"], tmp_path)
    options = model_options(cfg.model)
    with torch.device("meta"):  # shapes only: no memory for the large ones
        n_params = sum(p.numel() for p in BiLM(options).parameters())
    published = {"small": 13.6e6, "medium": 28.0e6, "original": 93.6e6}
    if name in published:
        assert abs(n_params - published[name]) < 0.05e6
        assert options.char_cnn.filters == [
            [1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]
        ]  # fmt: skip
        assert options.char_cnn.embedding.dim == 16 and options.dropout == 0.1
        assert options.lstm.cell_clip == 3 and options.lstm.proj_clip == 3
        assert options.lstm.use_skip_connections
    if name in ("tiny", "mini"):
        instantiate_all(cfg, tmp_path)


@pytest.mark.parametrize("name", options_of("hardware"))
def test_hardware_configs_instantiate(name, tmp_path):
    cfg = compose_train([f"hardware={name}", "model=tiny"], tmp_path)
    assert cfg.trainer.use_distributed_sampler is False
    instantiate_all(cfg, tmp_path)


@pytest.mark.parametrize("name", options_of("data"))
def test_data_configs_instantiate(name, tmp_path):
    cfg = compose_train([f"data={name}", "model=tiny"], tmp_path)
    _, datamodule, _ = instantiate_all(cfg, tmp_path)
    if name == "sample":
        datamodule.setup()
        assert len(datamodule.vocab) == 464 and datamodule.n_train_tokens == 289054


@pytest.mark.parametrize("name", options_of("experiment"))
def test_experiment_configs_instantiate(name, tmp_path):
    cfg = compose_train([f"+experiment={name}"], tmp_path)
    instantiate_all(cfg, tmp_path)


def test_small_corpus_experiment(tmp_path):
    cfg = compose_train(["+experiment=small_corpus"], tmp_path)
    assert cfg.model.lstm.dim == 256 and cfg.model.lstm.projection_dim == 128
    assert cfg.module.lr == 0.4
    assert cfg.data.batch_size == 32 and cfg.module.n_negative_samples == 8192
    assert cfg.callbacks.early_stopping.monitor == "val/ppl"
    assert cfg.data.train_files.endswith("data/sample/train.txt")
    cfg = compose_train(
        [
            "+experiment=small_corpus",
            "data.train_files=/c/train.txt",
            "trainer.max_time=00:00:30:00",
        ],
        tmp_path,
    )
    assert cfg.data.train_files == "/c/train.txt" and cfg.trainer.max_time == "00:00:30:00"


def test_multi_node_run_dir_is_the_job_not_the_clock(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=["hardware=multi_node", f"paths.root={ROOT}"],
            return_hydra_config=True,
        )
    assert cfg.hydra.run.dir.endswith("runs/default/job_4242")
    assert cfg.trainer.num_nodes == 2 and cfg.trainer.strategy == "ddp"


def test_model_configs_mirror_options_json(tmp_path):
    """A model config's keys are options.json's: the file train.py exports reads back as the
    config it came from."""
    cfg = compose_train(["model=mini"], tmp_path)
    options = model_options(cfg.model)
    exported = options.to_dict()
    config = OmegaConf.to_container(cfg.model)
    assert {k: exported[k] for k in config} == {**config, "char_cnn": exported["char_cnn"]}
    assert {k: exported["char_cnn"][k] for k in config["char_cnn"]} == config["char_cnn"]
    assert model_options(OmegaConf.create(exported)) == options


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.lstm_dim=64", "model.lstm_dim: renamed model.lstm.dim"),
        ("model.char_dim=8", "model.char_dim: renamed model.char_cnn.embedding.dim"),
        ("data.max_characters_per_token=20", "renamed model.char_cnn.max_characters_per_token"),
        ("+model.lstm.dimm=3", "model.lstm.dimm: not an options.json key"),
        ("+model.hidden=3", "model.hidden: not an options.json key"),
    ],
)
def test_old_and_unknown_model_keys_are_one_line(tmp_path, override, message):
    from elmo_lm.training.config import check_config, check_overrides

    with pytest.raises(TrainingError, match=message):
        check_overrides([override])
        cfg = compose_train(["model=tiny", override], tmp_path)
        check_config(cfg)
        model_options(cfg.model)


def test_an_old_flat_model_file_is_one_line(tmp_path):
    from elmo_lm.training.config import check_config

    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "old.yaml").write_text("lstm_dim: 64\nprojection_dim: 16\n")
    cfg = compose_train([f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "model=old"], tmp_path)
    with pytest.raises(TrainingError, match="model.lstm_dim: renamed model.lstm.dim"):
        check_config(cfg)
