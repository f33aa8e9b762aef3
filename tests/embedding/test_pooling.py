"""Sentence vectors (``pool=``): every mode x pool against a direct computation over the unpadded
token rows, embed_texts, and elmo-embed's file."""

import h5py
import numpy as np
import pytest
import torch

from elmo_lm.commands.embed import embed_file, main
from elmo_lm.embedding.elmo import MODES, Elmo
from elmo_lm.embedding.pooling import PoolError, pool_tokens
from elmo_lm.formats.characters import batch_to_ids
from tests.helpers import one_line_error

SENTENCES = [
    ["I", "sat", "by", "the", "river", "bank", "."],
    ["The", "bank", "raised", "rates"],
    [],
    ["bank"],
    ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"],
]


def _padded_layers(bilm) -> tuple[np.ndarray, np.ndarray]:
    """(L + 1, batch, time, D) of all sentences in one padded batch, and the (batch, time) mask."""
    with torch.no_grad():
        out = bilm(batch_to_ids([s for s in SENTENCES if s]))
    return torch.stack(out["layers"]).numpy(), out["mask"].numpy()


def _direct(layers: np.ndarray, mask: np.ndarray, mode: str, pool: str) -> list[np.ndarray]:
    """Each sentence's vector: the mode of its layers, pooled over its unmasked time steps."""
    vectors, row = [], 0
    for tokens in SENTENCES:
        if not tokens:
            width = 3 * 16 if mode == "concat" else 16
            vectors.append(np.zeros((3, 16) if mode == "all" else (width,), np.float32))
            continue
        rows = layers[:, row, mask[row]]  # (L + 1, n, D): the padding left out
        row += 1
        assert rows.shape[1] == len(tokens)
        per_token = {
            "all": rows,
            "concat": np.concatenate(list(rows), axis=-1),
            "top": rows[-1],
            "average": rows.mean(axis=0),
            "mix": rows.mean(axis=0),  # an untrained mix is the average
        }[mode]
        vectors.append(per_token.mean(axis=-2) if pool == "mean" else per_token.max(axis=-2))
    return vectors


@pytest.mark.parametrize("pool", ["mean", "max"])
@pytest.mark.parametrize("mode", MODES)
def test_pooled_against_the_unpadded_rows(bilm, mode, pool):
    elmo = Elmo(bilm)
    layers, mask = _padded_layers(bilm)
    assert not mask.all()  # the batch has padding, which pooling must leave out
    got = elmo.embed_sentences(SENTENCES, mode=mode, batch_size=2, pool=pool)
    per_token = elmo.embed_sentences(SENTENCES, mode=mode, batch_size=2)
    for tokens, g, t, e in zip(SENTENCES, got, per_token, _direct(layers, mask, mode, pool)):
        assert g.dtype == np.float32 and g.shape == e.shape == t.shape[:-2] + t.shape[-1:]
        np.testing.assert_allclose(g, e, atol=1e-5, rtol=0)
        if tokens:
            rows = t.mean(axis=-2) if pool == "mean" else t.max(axis=-2)
            np.testing.assert_allclose(g, rows, atol=1e-6, rtol=0)
    assert got[0].shape == {"all": (3, 16), "concat": (48,)}.get(mode, (16,))
    # alone, the sentence runs in a batch of one: the same numbers up to float32 rounding
    alone = elmo.embed_sentence(SENTENCES[1], mode=mode, pool=pool)
    np.testing.assert_allclose(alone, got[1], atol=1e-6, rtol=0)


def test_none_keeps_the_tokens_and_texts_pool_too(bilm):
    elmo = Elmo(bilm)
    for a, b in zip(
        elmo.embed_sentences(SENTENCES, mode="top", pool="none"),
        elmo.embed_sentences(SENTENCES, mode="top"),
    ):
        np.testing.assert_array_equal(a, b)
    (text,) = elmo.embed_texts(["the bank raised rates"], tokenize="none", mode="top", pool="mean")
    assert text.tokens == ["the", "bank", "raised", "rates"] and text.vectors.shape == (16,)
    expected = elmo.embed_sentence(text.tokens, mode="top").mean(axis=0)
    np.testing.assert_allclose(text.vectors, expected, atol=1e-6, rtol=0)


def test_pool_tokens():
    vectors = np.array([[1.0, -2.0], [3.0, 0.0]], np.float32)
    np.testing.assert_array_equal(pool_tokens(vectors, "mean"), [2.0, -1.0])
    np.testing.assert_array_equal(pool_tokens(vectors, "max"), [3.0, 0.0])
    assert pool_tokens(vectors, "none") is vectors
    np.testing.assert_array_equal(pool_tokens(np.zeros((3, 0, 4), np.float32), "max"), 0)
    assert pool_tokens(np.zeros((3, 0, 4), np.float32), "mean").shape == (3, 4)
    message = one_line_error(PoolError, lambda: pool_tokens(vectors, "sum"))
    assert message == "pool='sum' is not one of none, mean, max"


@pytest.mark.parametrize("mode", ["all", "top"])
def test_the_command_writes_one_vector_per_line(bilm, tmp_path, mode):
    elmo = Elmo(bilm)
    lines = [" ".join(s) for s in SENTENCES]
    path = tmp_path / "in.txt"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.hdf5"
    # max_tokens=4: the long lines go in pieces and are pooled over all their tokens
    embed_file(elmo, path, out, mode=mode, max_tokens=4, progress=False, pool="mean")
    per_token = tmp_path / "tokens.hdf5"
    embed_file(elmo, path, per_token, mode=mode, max_tokens=4, progress=False)
    with h5py.File(out, "r") as f, h5py.File(per_token, "r") as g:
        assert f.attrs["pool"] == "mean" and g.attrs["pool"] == "none"
        for i, tokens in enumerate(SENTENCES):
            got = f[str(i)][...]
            assert got.dtype == np.float32 and got.shape == ((3, 16) if mode == "all" else (16,))
            rows = g[str(i)][...]
            expected = rows.mean(axis=-2) if tokens else np.zeros_like(got)
            np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_the_command_line(bilm, tmp_path, capsys):
    bilm.to_hdf5(tmp_path / "options.json", tmp_path / "weights.hdf5")
    (tmp_path / "in.txt").write_text("the bank raised rates\nbank\n")
    args = [
        f"input={tmp_path / 'in.txt'}",
        f"output={tmp_path / 'out.hdf5'}",
        f"model={tmp_path}",
        "progress=false",
        "mode=average",
    ]
    main([*args, "pool=max"])
    with h5py.File(tmp_path / "out.hdf5", "r") as f:
        assert f["0"].shape == (16,) and f.attrs["pool"] == "max"
        expected = Elmo(bilm).embed_sentence(["the", "bank", "raised", "rates"]).max(axis=0)
        np.testing.assert_allclose(f["0"][...], expected, atol=1e-5, rtol=0)
    with pytest.raises(SystemExit) as exc:
        main([*args, "pool=sum"])
    assert exc.value.code == "error: pool='sum' is not one of none, mean, max"
