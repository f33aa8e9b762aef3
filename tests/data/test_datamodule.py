"""ElmoDataModule: setup before the Trainer, loaders with workers, a Lightning fit, the sample corpus."""

import subprocess
import sys
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from elmo_lm.data.datamodule import ElmoDataModule
from elmo_lm.data.vocabulary import Vocabulary, VocabularyError
from tests.helpers import ROOT


@pytest.fixture
def corpus(tmp_path):
    train, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    train.write_text("".join(f"w{i % 7} and w{i % 5} again\n" for i in range(60)), encoding="utf-8")
    valid.write_text("w1 and w2\nw3 new words here\nw4\n", encoding="utf-8")
    return train, valid


def test_setup_before_the_trainer_gives_vocab_and_epoch_length(corpus):
    train, valid = corpus
    dm = ElmoDataModule(str(train), str(valid), batch_size=4, unroll_steps=5)
    dm.setup()
    assert dm.vocab.tokens[:5] == ["<S>", "</S>", "<UNK>", "and", "again"]
    assert dm.n_train_tokens == 240
    assert dm.steps_per_epoch == (240 + 2 * 60) // (4 * 5)
    dm.trainer = SimpleNamespace(global_rank=1, world_size=2)
    assert dm.steps_per_epoch == (240 + 2 * 60) // (2 * 4 * 5)
    assert dm.train_dataloader().dataset.rank == 1


def test_vocab_file_is_used_and_validated(corpus, tmp_path):
    train, _ = corpus
    path = tmp_path / "vocab.txt"
    Vocabulary(["<S>", "</S>", "<UNK>", "and"]).save(path)
    dm = ElmoDataModule(train, vocab_file=str(path))
    dm.setup()
    assert len(dm.vocab) == 4 and dm.n_train_tokens == 240
    assert dm.val_dataloader() == []  # no valid_files: no validation
    path.write_text("a\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match="<S> is missing"):
        ElmoDataModule(train, vocab_file=str(path)).setup()


def test_hydra_instantiates_it_with_a_list_of_files(corpus):
    train, valid = corpus
    cfg = OmegaConf.create(
        {
            "_target_": "elmo_lm.data.datamodule.ElmoDataModule",
            "train_files": [str(train)],
            "valid_files": str(valid),
            "batch_size": 2,
        }
    )
    dm = instantiate(cfg)
    assert dm.train_files == [str(train)] and type(dm.train_files) is list
    dm.setup()
    assert next(iter(dm.train_dataloader()))["fwd_chars"].shape == (2, 20, 50)


def test_loaders_with_workers_split_the_epoch(corpus):
    train, valid = corpus
    dm = ElmoDataModule(
        train, valid, batch_size=2, unroll_steps=4, valid_batch_size=2, num_workers=2
    )
    dm.setup()
    loader = dm.train_dataloader()
    assert loader.persistent_workers and loader.batch_size is None
    for _ in range(2):  # the same workers serve both epochs
        batches = list(loader)
        assert len(batches) == len(loader) == dm.steps_per_epoch
        assert {b["stream_id"] for b in batches} == {0, 1}
        assert sum(b["reset"] for b in batches) == 2  # each stream's first batch
    val = list(dm.val_dataloader())
    # Two held-out streams of 8 and 3 pairs, one per worker: 2 windows of 4 each.
    assert len(val) == len(dm.val_dataloader()) == 4
    assert [b["stream_id"] for b in val] == [0, 1, 0, 1]
    assert [b["reset"] for b in val] == [True, True, False, False]
    assert sum(int((b["fwd_targets"] >= 0).sum()) for b in val) == 8 + 3


class CountingModule(L.LightningModule):
    """Consumes the batches; counts what it saw."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.train_batches = self.val_targets = 0

    def training_step(self, batch, batch_idx):
        self.train_batches += 1
        return (self.weight - batch["fwd_chars"].float().mean()) ** 2

    def validation_step(self, batch, batch_idx):
        self.val_targets += int((batch["fwd_targets"] >= 0).sum())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_fit_runs_the_computed_epochs(corpus, tmp_path):
    train, valid = corpus
    dm = ElmoDataModule(train, valid, batch_size=2, unroll_steps=4)
    model = CountingModule()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert model.train_batches == 2 * dm.steps_per_epoch
    assert model.val_targets == 2 * (8 + 3)


def test_sample_corpus_is_bundled_and_regenerates_identically(tmp_path):
    sample = ROOT / "data" / "sample"
    train = (sample / "train.txt").read_text(encoding="utf-8").splitlines()
    valid = (sample / "valid.txt").read_text(encoding="utf-8").splitlines()
    assert 20_000 <= len(train) <= 40_000 and 1000 <= len(valid) <= 2000
    assert "bank" in (sample / "README.md").read_text(encoding="utf-8")
    script = ROOT / "scripts" / "make_sample_corpus.py"
    args = [sys.executable, str(script), "--out", str(tmp_path), "--train", "200", "--valid", "1"]
    subprocess.run(args, check=True, capture_output=True)
    assert (tmp_path / "train.txt").read_text(encoding="utf-8").splitlines() == train[:200]


def test_a_vocabulary_that_covers_little_of_the_corpus_is_warned_about(corpus, tmp_path, caplog):
    train, _ = corpus
    # "and" is one of every four training tokens.
    small = tmp_path / "small_vocab.txt"
    small.write_text("<S>\n</S>\n<UNK>\nand\n", encoding="utf-8")
    dm = ElmoDataModule(str(train), vocab_file=str(small), batch_size=4, unroll_steps=5)
    with caplog.at_level("WARNING"):
        dm.setup()
    assert dm.train_stats.oov_rate == pytest.approx(0.75)
    assert "small_vocab.txt covers only 25% of the training tokens" in caplog.text
    fitting = tmp_path / "vocab.txt"
    fitting.write_text("<S>\n</S>\n<UNK>\nand\nagain\n" + "".join(f"w{i}\n" for i in range(7)))
    caplog.clear()
    with caplog.at_level("WARNING"):
        ElmoDataModule(str(train), vocab_file=str(fitting), batch_size=4, unroll_steps=5).setup()
    assert "covers only" not in caplog.text
