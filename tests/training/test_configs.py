"""Every file in conf/ composes, and its trainer, data module and module instantiate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from elmo_lm.data.datamodule import ElmoDataModule
from elmo_lm.errors import TrainingError
from elmo_lm.formats.options import RUN_OPTIONS
from elmo_lm.model.bilm import BiLM
from elmo_lm.training.config import (
    check_config,
    check_overrides,
    model_options,
    module_arguments,
    run_options,
)
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
    assert_instantiated_as(cfg, trainer, datamodule, module, vocab)
    return trainer, datamodule, module


def assert_instantiated_as(cfg, trainer, datamodule, module, vocab) -> None:
    """The objects of ``instantiate_all`` are of their classes and hold the config's values."""
    assert isinstance(trainer, L.Trainer)
    assert isinstance(datamodule, ElmoDataModule) and isinstance(module, ElmoLM)
    assert trainer.max_epochs == cfg.trainer.max_epochs
    assert trainer.precision == str(cfg.trainer.precision)
    assert trainer.num_nodes == cfg.trainer.num_nodes
    assert trainer.log_every_n_steps == cfg.trainer.log_every_n_steps
    kinds = {type(c).__name__ for c in trainer.callbacks}
    assert {"ModelSummary", "ProgressBar", "ModelCheckpoint"} <= kinds
    if "early_stopping" in cfg.callbacks:
        assert "EarlyStopping" in kinds
    assert datamodule.batch_size == cfg.data.batch_size
    assert datamodule.unroll_steps == cfg.data.unroll_steps
    assert datamodule.num_workers == cfg.data.num_workers
    assert module.hparams["vocab"] == list(vocab)
    assert module.hparams["lr"] == cfg.module.lr
    assert module.hparams["seed"] == cfg.seed
    assert module.hparams["reset_state_prob"] == cfg.module.reset_state_prob
    options = module.options
    assert options.lstm.dim == cfg.model.lstm.dim
    assert options.lstm.projection_dim == cfg.model.lstm.projection_dim
    if "char_cnn" in cfg.model:
        assert options.char_cnn.filters == OmegaConf.to_container(cfg.model.char_cnn.filters)
    else:  # word inputs
        assert options.char_cnn is None and options.word_inputs
    assert options.n_tokens_vocab == len(vocab)
    assert options.batch_size == cfg.data.batch_size
    assert options.unroll_steps == cfg.data.unroll_steps
    assert options.n_negative_samples_batch == cfg.module.n_negative_samples
    assert options.all_clip_norm_val == cfg.module.clip_norm
    assert options.n_epochs == cfg.trainer.max_epochs


def test_a_run_takes_its_run_options_from_the_keys_the_table_names(tmp_path):
    """``RUN_OPTIONS``: each option from its config key or the run's counts, the biLM from the
    model config, and the keys that are options are no module arguments."""
    cfg = compose_train(["model=tiny", "data.batch_size=7", "module.clip_norm=2.5"], tmp_path)
    shape = model_options(cfg.model)
    options = run_options(shape, cfg, vocab_size=11, n_train_tokens=1234)
    for option in RUN_OPTIONS:
        if option.config is not None:
            assert getattr(options, option.key) == OmegaConf.select(cfg, option.config)
    assert options.batch_size == 7 and options.all_clip_norm_val == 2.5
    assert type(options.all_clip_norm_val) is float and type(options.batch_size) is int
    assert options.n_tokens_vocab == 11 and options.n_train_tokens == 1234
    shape_again = dataclasses.replace(
        options, **{o.key: getattr(shape, o.key) for o in RUN_OPTIONS}
    )
    assert shape_again == shape  # nothing else changed
    assert set(module_arguments(cfg)) == set(cfg.module) - {"clip_norm", "n_negative_samples"}


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
    if options.word_inputs:  # the embedding's rows: the run's vocabulary
        options = dataclasses.replace(options, n_tokens_vocab=len(TINY_VOCAB))
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
    if name in ("tiny", "mini", "word_mini", "forward_mini"):
        _, _, module = instantiate_all(cfg, tmp_path)
        assert module.options == dataclasses.replace(
            options,
            sample_softmax=module.sampled,  # the softmax the run trains with
            n_tokens_vocab=len(TINY_VOCAB),
            unroll_steps=cfg.data.unroll_steps,
            batch_size=cfg.data.batch_size,
            n_negative_samples_batch=cfg.module.n_negative_samples,
            all_clip_norm_val=cfg.module.clip_norm,
            n_epochs=cfg.trainer.max_epochs,
        )


@pytest.mark.parametrize("name", options_of("hardware"))
def test_hardware_configs_instantiate(name, tmp_path):
    cfg = compose_train([f"hardware={name}", "model=tiny"], tmp_path)
    assert cfg.trainer.use_distributed_sampler is False
    given = cfg.trainer.accelerator, cfg.trainer.devices
    trainer, _, _ = instantiate_all(cfg, tmp_path)
    if name == "cpu" or torch.cuda.is_available():
        accelerator = {"cpu": "CPUAccelerator", "gpu": "CUDAAccelerator"}.get(given[0])
        if accelerator is not None:
            assert type(trainer.accelerator).__name__ == accelerator
    if name in ("multi_gpu", "multi_node"):
        assert cfg.trainer.strategy == "ddp" and given[0] == "gpu"
    else:
        assert given[1] == 1 and cfg.trainer.get("strategy", "auto") == "auto"


@pytest.mark.parametrize("name", options_of("data"))
def test_data_configs_instantiate(name, tmp_path):
    cfg = compose_train([f"data={name}", "model=tiny"], tmp_path)
    _, datamodule, _ = instantiate_all(cfg, tmp_path)
    assert datamodule.vocab_min_count == cfg.data.vocab_min_count
    assert datamodule.shuffle_buffer == cfg.data.shuffle_buffer
    if name == "sample":
        datamodule.setup()
        assert len(datamodule.vocab) == 464 and datamodule.n_train_tokens == 289054


@pytest.mark.parametrize("name", options_of("experiment"))
def test_experiment_configs_instantiate(name, tmp_path):
    cfg = compose_train([f"+experiment={name}"], tmp_path)
    trainer, _, _ = instantiate_all(cfg, tmp_path)
    assert trainer.val_check_interval == cfg.trainer.val_check_interval


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


RENAMED_KEYS = [
    ("model.lstm_dim=64", "model.lstm_dim: renamed model.lstm.dim"),
    ("model.char_dim=8", "model.char_dim: renamed model.char_cnn.embedding.dim"),
    ("data.max_characters_per_token=20", "renamed model.char_cnn.max_characters_per_token"),
]


@pytest.mark.parametrize("override, message", RENAMED_KEYS)
def test_a_renamed_key_on_the_command_line_is_one_line(override, message):
    """train.py checks the overrides before Hydra composes (which would refuse the unknown key
    with its own error)."""
    with pytest.raises(TrainingError, match=message):
        check_overrides([override])
    with pytest.raises(TrainingError, match=message):
        check_overrides([f"+{override}"])


@pytest.mark.parametrize("override, message", RENAMED_KEYS)
def test_a_renamed_key_in_a_composed_config_is_one_line(tmp_path, override, message):
    cfg = compose_train(["model=tiny", f"+{override}"], tmp_path)
    with pytest.raises(TrainingError, match=message):
        check_config(cfg)


@pytest.mark.parametrize(
    "override, message",
    [
        ("+model.lstm.dimm=3", "model.lstm.dimm: not an options.json key"),
        ("+model.hidden=3", "model.hidden: not an options.json key"),
    ],
)
def test_an_unknown_model_key_is_one_line(tmp_path, override, message):
    check_overrides([override])  # not a renamed key: composes, and the config's checks pass
    cfg = compose_train(["model=tiny", override], tmp_path)
    check_config(cfg)
    with pytest.raises(TrainingError, match=message):
        model_options(cfg.model)


def test_an_old_flat_model_file_is_one_line(tmp_path):
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "old.yaml").write_text("lstm_dim: 64\nprojection_dim: 16\n")
    cfg = compose_train([f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "model=old"], tmp_path)
    with pytest.raises(TrainingError, match="model.lstm_dim: renamed model.lstm.dim"):
        check_config(cfg)


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "trainer.precision=bf16-true",
            "trainer.precision=bf16-true .* use trainer.precision=bf16-mixed",
        ),
        ("trainer.precision=16-true", "Adagrad's sums of squares in 16 bits"),
        (
            "compile=max-autotune",
            "compile=max-autotune: must be one of none, default, reduce-overhead",
        ),
    ],
)
def test_a_precision_or_compile_mode_that_cannot_train_is_one_line(tmp_path, override, message):
    cfg = compose_train([override], tmp_path)
    with pytest.raises(TrainingError, match=message):
        check_config(cfg)
