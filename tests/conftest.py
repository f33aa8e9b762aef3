"""The shared fixtures of the tests (the reference data, the tiny biLM, a training config on a
tiny corpus); the functions behind them live in ``tests.helpers``, for test files to import."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import (
    compose_train_config,
    fixtures_dir,
    quick_overrides,
    tiny_bilm,
    tiny_options_with,
    write_cyclic_corpus,
)


def pytest_collection_modifyitems(items) -> None:
    """Everything under tests/integration/ (whole runs: DDP, faults, resume, parity, entry
    points) is ``slow``: ``pytest -m "not slow"`` is the quick loop."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def elmo_fixtures() -> Path:
    path = fixtures_dir()
    if path is None:
        if os.environ.get("ELMO_REQUIRE_FIXTURES"):
            pytest.fail(
                "ELMO_REQUIRE_FIXTURES is set but the ELMo fixtures were not found; set ELMO_FIXTURES"
            )
        pytest.skip(
            "ELMo reference fixtures not found: set ELMO_FIXTURES=<dir> holding lm_weights.hdf5, "
            "options.json, sentences.json, lm_embeddings_{0,1,2}.hdf5, vocab_test.txt and "
            "elmo_token_embeddings.hdf5, the original tools' outputs from the test suites of "
            "allenai/bilm-tf and AllenNLP (this project's CI reads them from "
            "../shared/fixtures/elmo; the README says where to get them)"
        )
    return path


@pytest.fixture(scope="session")
def tiny_options():
    """``tiny_options(**overrides)``: ``conf/model/tiny.yaml`` (a biLM that trains and tests in
    seconds), with ``lstm`` and ``char_cnn`` fields, ``char_dim`` or top-level options
    overridden by name."""
    return tiny_options_with


@pytest.fixture
def bilm():
    """A fresh tiny biLM in eval mode, its weights drawn after ``torch.manual_seed(0)``."""
    return tiny_bilm()


@pytest.fixture(scope="session")
def cyclic_corpus():
    """``cyclic_corpus(path, n, offset=0)``: n sentences of 5 consecutive words of a 10-word
    cycle written to ``path``. After the first word every token is predictable, so a model that
    learns reaches a mean perplexity near exp(ln 10 / 6) = 1.5."""
    return write_cyclic_corpus


@pytest.fixture
def quick_run_overrides():
    """``quick_run_overrides(tmp_path, model="tiny")``: train.py overrides of a quick CPU run
    on a cyclic corpus (batch 8 x 10, no sanity validation, no progress bar)."""
    return quick_overrides


@pytest.fixture(scope="session")
def train_config():
    """``train_config(tmp_path, *overrides, name="run", model="tiny")``: the composed
    conf/train.yaml of a CPU run on a cyclic corpus in ``tmp_path`` (batch 8 x 10), writing to
    ``tmp_path/runs/<name>``."""
    return compose_train_config
