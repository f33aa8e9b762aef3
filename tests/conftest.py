"""Shared test helpers, as fixtures: the reference data, the tiny biLM, a training config on a\ntiny corpus. ``ROOT`` (the repository) is the one constant test files import from here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from elmo_lm.config import model_options
from elmo_lm.options import BiLMOptions

ROOT = Path(__file__).resolve().parents[1]


def fixtures_dir() -> Path | None:
    """The original tools' reference data: $ELMO_FIXTURES, else ../shared/fixtures/elmo."""
    candidates = [os.environ.get("ELMO_FIXTURES"), ROOT.parent / "shared" / "fixtures" / "elmo"]
    for c in candidates:
        if c and (Path(c) / "lm_weights.hdf5").is_file():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def elmo_fixtures() -> Path:
    path = fixtures_dir()
    if path is None:
        if os.environ.get("ELMO_REQUIRE_FIXTURES"):
            pytest.fail(
                "ELMO_REQUIRE_FIXTURES is set but the ELMo fixtures were not found; set ELMO_FIXTURES"
            )
        pytest.skip("ELMo reference fixtures not found (set ELMO_FIXTURES)")
    return path


def model_config(name: str) -> BiLMOptions:
    """The biLM of ``conf/model/<name>.yaml``, read as train.py reads it."""
    return model_options(OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml"))


def _tiny_options(**overrides) -> BiLMOptions:
    options = model_config("tiny")
    for key, value in overrides.items():
        if key == "char_dim":
            options.char_cnn.embedding.dim = value
        elif hasattr(options.lstm, key):
            setattr(options.lstm, key, value)
        elif hasattr(options.char_cnn, key):
            setattr(options.char_cnn, key, value)
        elif hasattr(options, key):
            setattr(options, key, value)
        else:
            raise TypeError(f"tiny_options: no option {key!r}")
    return options


@pytest.fixture(scope="session")
def tiny_options():
    """``tiny_options(**overrides)``: ``conf/model/tiny.yaml`` (a biLM that trains and tests in
    seconds), with ``lstm`` and ``char_cnn`` fields, ``char_dim`` or top-level options
    overridden by name."""
    return _tiny_options


WORDS = [f"w{i}" for i in range(10)]


def _cyclic_corpus(path: Path, n: int, offset: int = 0) -> Path:
    lines = [" ".join(WORDS[(i + offset + k) % 10] for k in range(5)) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def cyclic_corpus():
    """``cyclic_corpus(path, n, offset=0)``: n sentences of 5 consecutive words of a 10-word
    cycle written to ``path``. After the first word every token is predictable, so a model that
    learns reaches a mean perplexity near exp(ln 10 / 6) = 1.5."""
    return _cyclic_corpus


def _quick_run_overrides(tmp_path: Path, model: str = "tiny") -> list[str]:
    """train.py overrides of a quick CPU run on a cyclic corpus written under ``tmp_path``."""
    train_file = _cyclic_corpus(tmp_path / "train.txt", 200)
    valid_file = _cyclic_corpus(tmp_path / "valid.txt", 30, offset=3)
    return [
        f"paths.runs_dir={tmp_path / 'runs'}",
        f"model={model}",
        "hardware=cpu",
        f"data.train_files={train_file}",
        f"data.valid_files={valid_file}",
        "data.batch_size=8",
        "data.unroll_steps=10",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


@pytest.fixture
def quick_run_overrides():
    """``quick_run_overrides(tmp_path, model="tiny")``: train.py overrides of a quick CPU run
    on a cyclic corpus (batch 8 x 10, no sanity validation, no progress bar)."""
    return _quick_run_overrides


def _train_config(tmp_path: Path, *overrides: str, name: str = "run", model: str = "tiny"):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[
                f"paths.root={ROOT}",
                f"paths.output_dir={tmp_path / 'runs' / name}",
                *_quick_run_overrides(tmp_path, model),
                "trainer.log_every_n_steps=5",
                *overrides,
            ],
        )


@pytest.fixture(scope="session")
def train_config():
    """``train_config(tmp_path, *overrides, name="run", model="tiny")``: the composed
    conf/train.yaml of a CPU run on a cyclic corpus in ``tmp_path`` (batch 8 x 10), writing to
    ``tmp_path/runs/<name>``."""
    return _train_config
