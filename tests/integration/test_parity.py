"""The biLM against the representations the original tools computed (../shared/fixtures/elmo)."""

import json

import h5py
import numpy as np
import torch

from elmo_lm import BiLM, batch_to_ids


def test_top_layer_matches_the_original_stateful_run(elmo_fixtures):
    """The original tools start their first batch from a zero state: warm_start=False."""
    bilm = BiLM.from_hdf5(
        elmo_fixtures / "options.json",
        elmo_fixtures / "lm_weights.hdf5",
        stateful=True,
        warm_start=False,
    ).eval()
    sentences = json.loads((elmo_fixtures / "sentences.json").read_text())
    for i in range(10):
        batch = [sentences[k][i].split() for k in range(3)]
        with torch.no_grad():
            top = bilm(batch_to_ids(batch))["layers"][-1]
        for k, tokens in enumerate(batch):
            with h5py.File(elmo_fixtures / f"lm_embeddings_{k}.hdf5", "r") as f:
                ref = f[str(i)][...]  # (2, n, P): forward top, backward top
            expected = np.concatenate([ref[0], ref[1]], axis=-1)
            np.testing.assert_allclose(top[k, : len(tokens)].numpy(), expected, atol=1e-5, rtol=0)


def test_stateless_differs_from_stateful_after_the_first_batch(elmo_fixtures):
    sentences = json.loads((elmo_fixtures / "sentences.json").read_text())
    stateful = BiLM.from_hdf5(
        elmo_fixtures / "options.json", elmo_fixtures / "lm_weights.hdf5", stateful=True
    ).eval()
    stateless = BiLM.from_hdf5(
        elmo_fixtures / "options.json", elmo_fixtures / "lm_weights.hdf5"
    ).eval()
    batches = [batch_to_ids([sentences[k][i].split() for k in range(3)]) for i in range(2)]
    with torch.no_grad():
        a0, b0 = stateful(batches[0])["layers"][-1], stateless(batches[0])["layers"][-1]
        a1, b1 = stateful(batches[1])["layers"][-1], stateless(batches[1])["layers"][-1]
        stateful.reset_states()
        again = stateful(batches[1])["layers"][-1]
    torch.testing.assert_close(a0, b0)
    assert not torch.allclose(a1, b1, atol=1e-4)
    torch.testing.assert_close(again, b1)


def test_token_embeddings_match_the_original(elmo_fixtures):
    bilm = BiLM.from_hdf5(elmo_fixtures / "options.json", elmo_fixtures / "lm_weights.hdf5").eval()
    vocab = (elmo_fixtures / "vocab_test.txt").read_text(encoding="utf-8").split("\n")
    with h5py.File(elmo_fixtures / "elmo_token_embeddings.hdf5", "r") as f:
        expected = f["embedding"][...]
    assert len(vocab) == expected.shape[0]
    with torch.no_grad():
        got = bilm.embed_tokens(batch_to_ids([[t] for t in vocab]))[:, 0]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5, rtol=0)
