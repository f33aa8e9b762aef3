"""Shared test helpers: the reference fixtures and tiny model options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from elmo_lm.options import BiLMOptions, CharCNNOptions, CharEmbeddingOptions, LSTMOptions

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
            pytest.fail("ELMO_REQUIRE_FIXTURES is set but the ELMo fixtures were not found; set ELMO_FIXTURES")
        pytest.skip("ELMo reference fixtures not found (set ELMO_FIXTURES)")
    return path


def tiny_options(**overrides) -> BiLMOptions:
    """A biLM small enough to train and test in seconds."""
    lstm = dict(dim=32, projection_dim=8, n_layers=2, cell_clip=3.0, proj_clip=3.0, use_skip_connections=True)
    cnn = dict(activation="relu", filters=[[1, 4], [2, 8], [3, 8]], n_highway=1, max_characters_per_token=50, n_characters=261)
    for key in list(overrides):
        if key in lstm:
            lstm[key] = overrides.pop(key)
        elif key in cnn:
            cnn[key] = overrides.pop(key)
    char_dim = overrides.pop("char_dim", 4)
    return BiLMOptions(
        lstm=LSTMOptions(**lstm),
        char_cnn=CharCNNOptions(embedding=CharEmbeddingOptions(dim=char_dim), **cnn),
        **overrides,
    )
