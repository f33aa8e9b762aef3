"""Shared test helpers: the reference fixtures and tiny model options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
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


def tiny_options(**overrides) -> BiLMOptions:
    """``conf/model/tiny.yaml`` (a biLM that trains and tests in seconds), with ``overrides`` of
    ``lstm`` and ``char_cnn`` fields, ``char_dim`` or top-level options by name."""
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
