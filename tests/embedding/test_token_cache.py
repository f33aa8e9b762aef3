"""The token-embedding cache: same vectors as the character path, and the original file layout."""

import h5py
import numpy as np
import pytest
import torch

from elmo_lm.data.vocabulary import VocabularyError, read_tokens
from elmo_lm.embedding.elmo import Elmo
from elmo_lm.embedding.token_cache import TokenCache, TokenCacheError
from elmo_lm.formats.characters import batch_to_ids
from elmo_lm.model.bilm import BiLM

VOCAB = ["<S>", "</S>", "<UNK>", "the", "bank", "river", "money", "x" * 80]


@pytest.fixture
def vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB))  # the last line without a newline, like the fixture's
    return path


def test_cache_matches_char_path(bilm, vocab_file, tmp_path):
    cache = TokenCache.build(bilm, vocab_file)
    path = tmp_path / "cache.hdf5"
    cache.save(path)
    with h5py.File(path, "r") as f:
        assert list(f) == ["embedding"]
        assert f["embedding"].shape == (len(VOCAB), 8) and f["embedding"].dtype == np.float32
    cache = TokenCache.from_file(path, vocab_file)
    sentences = [["the", "bank", "unseen"], ["river", "x" * 90, "money", "the", "Bank"]]
    ids = batch_to_ids(sentences)
    rows = cache.rows(ids.view(-1, 50))
    # known tokens (and the long one, whose char ids match the cached long token) hit the cache
    assert rows.view(2, 5).tolist() == [[3, 4, -1, -1, -1], [5, 7, 6, 3, -1]]
    with torch.no_grad():
        expected = bilm(ids)["layers"]
        cached = bilm(ids, token_cache=cache)["layers"]
    for a, b in zip(cached, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_cache_is_used(bilm, vocab_file):
    cache = TokenCache.build(bilm, vocab_file)
    cache.embeddings[VOCAB.index("bank")] = 0.0
    ids = batch_to_ids([["the", "bank"]])
    with torch.no_grad():
        layer0 = bilm(ids, token_cache=cache)["layers"][0]
    assert layer0[0, 1].abs().sum() == 0 and layer0[0, 0].abs().sum() > 0


def test_elmo_with_cache(bilm, vocab_file):
    sentences = [["the", "bank", "of", "the", "river"], ["money"], ["unseen", "words", "only"]]
    plain = Elmo(bilm).embed_sentences(sentences, mode="all")
    cached = Elmo(bilm, token_cache=TokenCache.build(bilm, vocab_file)).embed_sentences(
        sentences, mode="all"
    )
    for a, b in zip(cached, plain, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_fixture_token_embeddings(elmo_fixtures, tmp_path):
    """Caching from the fixture model reproduces the original tools' token-embedding file."""
    bilm = BiLM.from_hdf5(elmo_fixtures / "options.json", elmo_fixtures / "lm_weights.hdf5").eval()
    cache = TokenCache.build(bilm, elmo_fixtures / "vocab_test.txt")
    path = tmp_path / "elmo_token_embeddings.hdf5"
    cache.save(path)
    with (
        h5py.File(path, "r") as ours,
        h5py.File(elmo_fixtures / "elmo_token_embeddings.hdf5", "r") as ref,
    ):
        assert list(ours) == list(ref) == ["embedding"]
        assert ours["embedding"].shape == ref["embedding"].shape == (458, 16)
        np.testing.assert_allclose(ours["embedding"][...], ref["embedding"][...], atol=1e-5, rtol=0)
    # and the original file, read back, is used in place of the character CNN
    ref_cache = TokenCache.from_file(
        elmo_fixtures / "elmo_token_embeddings.hdf5", elmo_fixtures / "vocab_test.txt"
    )
    ids = batch_to_ids([read_tokens(elmo_fixtures / "vocab_test.txt")[:40]])
    assert bool((ref_cache.rows(ids[0]) >= 0).all())
    with torch.no_grad():
        expected = bilm(ids)["layers"]
        cached = bilm(ids, token_cache=ref_cache)["layers"]
    for a, b in zip(cached, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_bad_files(bilm, vocab_file, tmp_path):
    with pytest.raises(VocabularyError, match="no such vocabulary file"):
        TokenCache.build(bilm, tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(VocabularyError, match="empty"):
        read_tokens(empty)
    path = tmp_path / "cache.hdf5"
    TokenCache.build(bilm, vocab_file).save(path)
    short = tmp_path / "short.txt"
    short.write_text("the\nbank\n")
    with pytest.raises(TokenCacheError, match="8 rows for the 2 lines"):
        TokenCache.from_file(path, short)
    with pytest.raises(TokenCacheError, match="not found"):
        TokenCache.from_file(tmp_path / "nope.hdf5", vocab_file)
    with pytest.raises(TokenCacheError, match="not an HDF5 file"):
        TokenCache.from_file(vocab_file, vocab_file)
