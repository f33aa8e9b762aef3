"""Test helpers: the repository's root, the reference data, the tiny biLM and its options, tiny
corpora and training configs. Test files import them from here (``from tests.helpers import ROOT``);
``conftest.py`` offers the same as fixtures."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.formats.options import BiLMOptions
from elmo_lm.formats.tokenize import TokenizerSpec
from elmo_lm.model.bilm import BiLM
from elmo_lm.training.config import model_options

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
"""The project's own test data: a run written before the package moved, its 20-step trace."""


def fixtures_dir() -> Path | None:
    """The original tools' reference data: $ELMO_FIXTURES, else ../shared/fixtures/elmo."""
    candidates = [os.environ.get("ELMO_FIXTURES"), ROOT.parent / "shared" / "fixtures" / "elmo"]
    for c in candidates:
        if c and (Path(c) / "lm_weights.hdf5").is_file():
            return Path(c)
    return None


def model_config(name: str) -> BiLMOptions:
    """The biLM of ``conf/model/<name>.yaml``, read as train.py reads it."""
    return model_options(OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml"))


def tiny_options_with(**overrides) -> BiLMOptions:
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


def write_file(path: Path, content: str | bytes) -> Path:
    """Writes ``content`` to ``path``: text as UTF-8, bytes as they are."""
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def tiny_bilm(seed: int = 0, **kwargs) -> BiLM:
    """The tiny biLM (``conf/model/tiny.yaml``) in eval mode, its weights drawn after
    ``torch.manual_seed(seed)``; ``kwargs`` go to ``BiLM`` (``stateful``, ``warm_start``)."""
    torch.manual_seed(seed)
    return BiLM(tiny_options_with(), **kwargs).eval()


WORDS = [f"w{i}" for i in range(10)]


def write_cyclic_corpus(path: Path, n: int, offset: int = 0) -> Path:
    lines = [" ".join(WORDS[(i + offset + k) % 10] for k in range(5)) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def quick_overrides(tmp_path: Path, model: str = "tiny") -> list[str]:
    """train.py overrides of a quick CPU run on a cyclic corpus written under ``tmp_path``."""
    train_file = write_cyclic_corpus(tmp_path / "train.txt", 200)
    valid_file = write_cyclic_corpus(tmp_path / "valid.txt", 30, offset=3)
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


def compose_train_config(tmp_path: Path, *overrides: str, name: str = "run", model: str = "tiny"):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[
                f"paths.root={ROOT}",
                f"paths.output_dir={tmp_path / 'runs' / name}",
                *quick_overrides(tmp_path, model),
                "trainer.log_every_n_steps=5",
                *overrides,
            ],
        )


def run_train_py(*argv: str, env: dict[str, str | None] | None = None):
    """``python train.py *argv`` in the repository, one thread, its output captured; ``env``
    sets (or, with None, removes) variables of the child's environment."""
    import subprocess
    import sys

    child = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key, value in (env or {}).items():
        if value is None:
            child.pop(key, None)
        else:
            child[key] = value
    return subprocess.run(
        [sys.executable, "train.py", *argv],
        cwd=ROOT,
        env=child,
        capture_output=True,
        text=True,
        timeout=300,
    )


PREPARED_VOCAB = ["<S>", "</S>", "<UNK>", *reversed(WORDS)]  # not the order a built one would have
PREPARED_TOKENIZER = TokenizerSpec("moses", "en", "NFC")


def write_prepared(root: Path, spec=PREPARED_TOKENIZER, **changes) -> Path:
    """A corpus directory as prepare.py writes it: train/part-*.txt, valid.txt, vocab.txt,
    tokenizer.json and corpus.json (``changes`` replace its keys; None removes one)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "train").mkdir(exist_ok=True)
    write_cyclic_corpus(root / "train" / "part-000.txt", 120)
    write_cyclic_corpus(root / "train" / "part-001.txt", 80, offset=1)
    write_cyclic_corpus(root / "valid.txt", 20, offset=3)
    Vocabulary(PREPARED_VOCAB).save(root / "vocab.txt")
    corpus = {
        "train_files": ["train/part-000.txt", "train/part-001.txt"],
        "valid_files": ["valid.txt"],
        "test_files": [],
        "vocab_file": "vocab.txt",
        "counts_file": None,
        "tokenizer": spec.to_dict() if spec else None,
        "report": {"sentences": 200},
    }
    for key, value in changes.items():
        if value is None:
            corpus.pop(key, None)
        else:
            corpus[key] = value
    if spec is not None:
        spec.save(root / "tokenizer.json")
    (root / "corpus.json").write_text(json.dumps(corpus), encoding="utf-8")
    return root


def one_line_error(kind: type[Exception], call) -> str:
    """The message of the ``kind`` error ``call()`` raises, checked to be one line."""
    import pytest

    with pytest.raises(kind) as exc:
        call()
    message = str(exc.value)
    assert "\n" not in message
    return message


SCORER_VOCAB = ["<S>", "</S>", "<UNK>", *WORDS]


def write_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A tiny ElmoLM over ``SCORER_VOCAB`` (random weights, full softmax) saved in ``load_checkpoint``'s layout."""
    from elmo_lm.training.module import ElmoLM

    torch.manual_seed(seed)
    module = ElmoLM(tiny_options_with().to_dict(), SCORER_VOCAB, softmax="full")
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def require_wordnet() -> Path:
    """WordNet's files (``$WORDNET_DIR``, else Debian's ``wordnet-base``) and nltk, or a skip;
    a failure instead where ``ELMO_REQUIRE_WORDNET`` is set (CI installs them)."""
    import importlib.util

    import pytest

    from elmo_lm.embedding.senses import WordNetError, wordnet_root

    try:
        root = wordnet_root()
        if importlib.util.find_spec("nltk") is None:
            raise WordNetError('nltk is not installed: pip install -e ".[probe]"')
    except WordNetError as exc:
        if os.environ.get("ELMO_REQUIRE_WORDNET"):
            pytest.fail(f"ELMO_REQUIRE_WORDNET is set: {exc}")
        pytest.skip(f"{exc}")
    return root


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    import struct

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def load_script(relative: str):
    """A module of bench/ or scripts/, which are not packages, by its path under the repository."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
