"""Progress bars of the long jobs outside the Trainer: drawn when asked, and by default only
when stderr is a terminal (so logs and tests stay clean)."""

from __future__ import annotations

import pytest
import torch

from elmo_lm.commands.embed import embed_file
from elmo_lm.console import wanted
from elmo_lm.data.corpus import CorpusStats, count_corpus
from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.embedding.elmo import Elmo
from elmo_lm.embedding.token_cache import TokenCache
from elmo_lm.model.bilm import BiLM


@pytest.fixture
def corpus(cyclic_corpus, tmp_path):
    return cyclic_corpus(tmp_path / "corpus.txt", 50)


def test_bars_are_off_by_default_unless_stderr_is_a_terminal(monkeypatch, capsys):
    assert wanted(True) and not wanted(False)
    assert not wanted(None)  # pytest captures stderr: not a terminal
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert wanted(None)


@pytest.mark.parametrize("progress", [True, None])
def test_counting_a_corpus_and_building_its_vocabulary(corpus, capsys, progress):
    vocab = Vocabulary.build(corpus, progress=progress)
    stats = count_corpus(corpus, vocab, progress=progress)
    assert stats == CorpusStats(50, 250, 0.0)
    err = capsys.readouterr().err
    if progress:
        assert "building the vocabulary" in err and "counting the corpus" in err
    else:
        assert err == ""


def test_building_a_token_cache_and_embedding_a_file(tiny_options, corpus, tmp_path, capsys):
    torch.manual_seed(0)
    bilm = BiLM(tiny_options()).eval()
    vocab = tmp_path / "vocab.txt"
    Vocabulary.build(corpus).save(vocab)
    TokenCache.build(bilm, vocab, progress=True)
    embed_file(Elmo(bilm), corpus, tmp_path / "out.hdf5", progress=True)
    err = capsys.readouterr().err
    assert "token cache" in err and "elmo-embed" in err and "50/50" in err
    TokenCache.build(bilm, vocab)
    embed_file(Elmo(bilm), corpus, tmp_path / "out.hdf5")
    assert capsys.readouterr().err == ""
