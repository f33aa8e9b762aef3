"""data.corpus: a prepared corpus directory (corpus.json) gives train.py its files, vocabulary and
tokenizer; bad ones are one line; raw text is warned about once."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from omegaconf import OmegaConf

from elmo_lm.data.corpus import (
    UNTOKENIZED_SHARE,
    CorpusError,
    PreparedCorpus,
    untokenized_share,
)
from elmo_lm.data.datamodule import ElmoDataModule
from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.formats.tokenize import TokenizerSpec
from elmo_lm.training.resume import resume_argv
from elmo_lm.training.run import corpus_defaults, train
from tests.helpers import PREPARED_VOCAB as VOCAB
from tests.helpers import (
    ROOT,
    compose_train_config,
    one_line_error,
    write_cyclic_corpus,
    write_prepared,
)

MOSES = TokenizerSpec("moses", "en", "NFC")
RAW = "".join(f'Hello, world number {i}. The cat sat on the mat, said "Bob".\n' for i in range(40))


def test_corpus_json_gives_absolute_files_and_the_tokenizer(tmp_path):
    root = write_prepared(tmp_path / "prep")
    corpus = PreparedCorpus.load(root)
    assert corpus.train_files == [str(root / "train" / f"part-00{i}.txt") for i in (0, 1)]
    assert corpus.valid_files == [str(root / "valid.txt")] and corpus.test_files == []
    assert corpus.vocab_file == str(root / "vocab.txt") and corpus.counts_file is None
    assert corpus.tokenizer == MOSES and corpus.report == {"sentences": 200}
    assert PreparedCorpus.load(root / "corpus.json").train_files == corpus.train_files
    # no tokenizer key: the directory's tokenizer.json; neither: None
    (root / "tokenizer.json").write_text(json.dumps({"name": "whitespace"}))
    corpus_json = json.loads((root / "corpus.json").read_text())
    corpus_json.pop("tokenizer")
    (root / "corpus.json").write_text(json.dumps(corpus_json))
    assert PreparedCorpus.load(root).tokenizer == TokenizerSpec("whitespace")
    (root / "tokenizer.json").unlink()
    assert PreparedCorpus.load(root).tokenizer is None


def _one_line(call) -> str:
    return one_line_error(CorpusError, call)


def test_bad_corpus_directories_are_one_line_naming_the_file_and_the_fix(tmp_path):
    message = _one_line(lambda: PreparedCorpus.load(tmp_path / "nope"))
    assert "data.corpus=" in message and "no such directory" in message and "prepare.py" in message
    (tmp_path / "a.txt").write_text("a b\n")
    message = _one_line(lambda: PreparedCorpus.load(tmp_path / "a.txt"))
    assert "not a prepared corpus directory" in message and "data.train_files=" in message
    message = _one_line(lambda: PreparedCorpus.load(tmp_path))
    assert f"{tmp_path / 'corpus.json'}: not found" in message and "prepare.py input=" in message
    root = write_prepared(tmp_path / "prep")
    (root / "corpus.json").write_text("{not json")
    message = _one_line(lambda: PreparedCorpus.load(root))
    assert "corpus.json: not valid JSON" in message and "prepare.py" in message
    write_prepared(root, train_files=[])
    assert "train_files lists no file" in _one_line(lambda: PreparedCorpus.load(root))
    write_prepared(root, train_files="train/part-009.txt")
    assert "part-009.txt, which does not exist" in _one_line(lambda: PreparedCorpus.load(root))
    write_prepared(root, valid_files=3)
    assert "valid_files must be a list of paths" in _one_line(lambda: PreparedCorpus.load(root))
    write_prepared(root, tokenizer={"name": "spacy"})
    assert "'spacy' is not one of" in _one_line(lambda: PreparedCorpus.load(root))


def test_the_data_module_reads_the_corpus_and_given_files_win(tmp_path, caplog):
    root = write_prepared(tmp_path / "prep")
    dm = ElmoDataModule(corpus=str(root), batch_size=4, unroll_steps=5)
    dm.setup()
    assert dm.train_files == PreparedCorpus.load(root).train_files
    assert dm.valid_files == [str(root / "valid.txt")]
    assert dm.vocab.tokens == VOCAB and dm.tokenizer == MOSES
    assert dm.n_train_tokens == 200 * 5
    other = write_cyclic_corpus(tmp_path / "other.txt", 30)
    with caplog.at_level(logging.INFO, logger="elmo_lm.data.datamodule"):
        dm = ElmoDataModule(train_files=str(other), corpus=str(root))
    lines = [r.getMessage() for r in caplog.records if "given with it" in r.getMessage()]
    assert len(lines) == 1 and f"data.train_files={other}" in lines[0]
    assert dm.train_files == str(other) and dm.vocab_file == str(root / "vocab.txt")
    with pytest.raises(CorpusError, match="data.train_files=<files> or data.corpus="):
        ElmoDataModule()


def test_raw_text_is_warned_about_once_on_rank_zero(tmp_path, caplog, monkeypatch):
    raw = tmp_path / "raw.txt"
    raw.write_text(RAW)
    tokenized = write_cyclic_corpus(tmp_path / "tok.txt", 50)
    assert untokenized_share(raw) > UNTOKENIZED_SHARE > untokenized_share(tokenized)
    with caplog.at_level(logging.WARNING, logger="elmo_lm.data.datamodule"):
        dm = ElmoDataModule(str(raw))
        dm.setup()
        dm.setup()  # Lightning calls it again: no second warning
        ElmoDataModule(str(tokenized)).setup()
        monkeypatch.setenv("RANK", "1")
        ElmoDataModule(str(raw)).setup()
    warned = [r.getMessage() for r in caplog.records if "looks untokenized" in r.getMessage()]
    assert len(warned) == 1
    assert f"python prepare.py input={raw} out=<dir> tokenizer=moses" in warned[0]
    assert "data.corpus=<dir>" in warned[0]


def test_corpus_defaults_give_way_to_the_command_line_only():
    cfg = OmegaConf.create({"data": {"corpus": None, "train_files": "x"}})
    assert corpus_defaults(cfg) == {}
    cfg.data.corpus = "prep"
    assert corpus_defaults(cfg) == dict.fromkeys(("train_files", "valid_files", "vocab_file"))
    cfg.hydra = {"overrides": {"task": ["data.corpus=prep", "data.vocab_file=v.txt"]}}
    assert corpus_defaults(cfg) == {"train_files": None, "valid_files": None}


def test_train_records_the_corpus_tokenizer_and_a_resume_keeps_the_corpus(tmp_path):
    root = write_prepared(tmp_path / "prep")
    cfg = compose_train_config(tmp_path, f"data.corpus={root}", "trainer.max_steps=2")
    train(cfg)
    run_dir = tmp_path / "runs" / "run"
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["tokenizer"] == MOSES.to_dict()
    assert Vocabulary.from_file(run_dir / "vocab.txt").tokens == VOCAB
    # a run without a corpus records none
    cfg = compose_train_config(tmp_path, "trainer.max_steps=1", name="plain")
    train(cfg)
    plain = torch.load(tmp_path / "runs" / "plain" / "checkpoints" / "last.ckpt", weights_only=True)
    assert plain["hyper_parameters"]["tokenizer"] is None
    # train.py's resume composes the run's own overrides again: data.corpus among them
    (run_dir / ".hydra").mkdir(exist_ok=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(
        OmegaConf.to_yaml([f"paths.runs_dir={tmp_path / 'runs'}", f"data.corpus={root}"])
    )
    argv = resume_argv([f"ckpt_path={run_dir}", "trainer.max_steps=4"], ROOT / "conf")
    assert f"data.corpus={root}" in argv and f"data.vocab_file={run_dir / 'vocab.txt'}" in argv
    resumed = OmegaConf.create(
        {"data": {"corpus": str(root)}, "hydra": {"overrides": {"task": argv}}}
    )
    assert corpus_defaults(resumed) == {"train_files": None, "valid_files": None}
