"""Elmo: every mode against the biLM's layers, the trainable mixes, static vectors, loading."""

import json

import h5py
import numpy as np
import pytest
import torch

from elmo_lm.embedding.elmo import Elmo, ElmoError
from elmo_lm.embedding.token_cache import TokenCache
from elmo_lm.embedding.word_vectors import WordVectors
from elmo_lm.formats.characters import batch_to_ids
from elmo_lm.formats.checkpoint import CheckpointError
from elmo_lm.formats.options import OptionsError
from elmo_lm.formats.weights_file import WeightsFileError

SENTENCES = [
    ["I", "sat", "by", "the", "river", "bank", "."],
    ["The", "bank", "raised", "rates"],
    [],
    ["bank"],
    ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"],
]


def _by_hand(bilm, tokens):
    """(L + 1, n, D): the biLM run on this sentence alone."""
    with torch.no_grad():
        layers = bilm(batch_to_ids([tokens]))["layers"]
    return torch.stack(layers)[:, 0].numpy()


@pytest.mark.parametrize("mode", ["all", "concat", "top", "average", "mix"])
def test_modes(bilm, mode):
    elmo = Elmo(bilm)
    out = elmo.embed_sentences(SENTENCES, mode=mode, batch_size=2)
    assert len(out) == len(SENTENCES)
    for tokens, got in zip(SENTENCES, out, strict=True):
        n = len(tokens)
        layers = _by_hand(bilm, tokens) if n else np.zeros((3, 0, 16), np.float32)
        expected = {
            "all": layers,
            "concat": np.concatenate([layers[0], layers[1], layers[2]], axis=-1),
            "top": layers[2],
            "average": (layers[0] + layers[1] + layers[2]) / 3,
            "mix": (layers[0] + layers[1] + layers[2]) / 3,  # an untrained mix is the average
        }[mode]
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    shapes = {
        "all": (3, 7, 16),
        "concat": (7, 48),
        "top": (7, 16),
        "average": (7, 16),
        "mix": (7, 16),
    }
    assert out[0].shape == shapes[mode]


def test_batching_does_not_change_vectors(bilm):
    elmo = Elmo(bilm)
    one = elmo.embed_sentences(SENTENCES, mode="all", batch_size=1)
    many = elmo.embed_sentences(SENTENCES, mode="all", batch_size=64)
    for a, b in zip(one, many, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(elmo.embed_sentence(SENTENCES[1], mode="top"), one[1][-1])


def test_mix_trains_and_bilm_stays_frozen(bilm):
    elmo = Elmo(bilm, num_output_representations=2, l2_coef=0.01, dropout=0.5)
    elmo.train()
    assert not bilm.training  # frozen biLM: no LSTM dropout while the downstream model trains
    out = elmo(SENTENCES[:2])
    reps, mask = out["elmo_representations"], out["mask"]
    assert (
        len(reps) == 2
        and reps[0].shape == (2, 7, 16)
        and mask.tolist()[1] == [True] * 4 + [False] * 3
    )
    loss = (reps[0] * mask.unsqueeze(-1)).pow(2).sum() + reps[1].sum() + elmo.penalty()
    loss.backward()
    trainable = {n for n, p in elmo.named_parameters() if p.requires_grad}
    assert trainable == {
        f"scalar_mixes.{k}.{p}" for k in (0, 1) for p in ("scalar_parameters", "gamma")
    }
    for name, p in elmo.named_parameters():
        if name.startswith("scalar_mixes"):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_mix_trains_with_bilm(bilm):
    elmo = Elmo(bilm, requires_grad=True, do_layer_norm=True)
    elmo(SENTENCES[:2])["elmo_representations"][0].sum().backward()
    assert bilm.lstm.weights[0].grad is not None
    assert elmo.scalar_mixes[0].scalar_parameters.grad is not None


def test_forward_matches_embed_sentences(bilm):
    elmo = Elmo(bilm)
    with torch.no_grad():
        elmo.scalar_mixes[0].scalar_parameters.copy_(torch.tensor([0.5, -1.0, 2.0]))
        elmo.scalar_mixes[0].gamma.fill_(2.0)
        reps = elmo(batch_to_ids(SENTENCES[:2]))["elmo_representations"][0]
    w = torch.softmax(torch.tensor([0.5, -1.0, 2.0]), 0).numpy()
    for row, tokens in enumerate(SENTENCES[:2]):
        layers = _by_hand(bilm, tokens)
        expected = 2.0 * (w[0] * layers[0] + w[1] * layers[1] + w[2] * layers[2])
        np.testing.assert_allclose(reps[row, : len(tokens)].numpy(), expected, atol=1e-5, rtol=0)
        np.testing.assert_allclose(
            elmo.embed_sentence(tokens, mode="mix"), expected, atol=1e-5, rtol=0
        )


@pytest.mark.parametrize("binary", [False, True])
def test_static_word_vectors(bilm, tmp_path, binary):
    words = ["bank", "river", "the"]
    table = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    path = tmp_path / ("w2v.bin" if binary else "w2v.txt")
    with open(path, "wb") as f:
        f.write(b"3 5\n")
        for word, vec in zip(words, table, strict=True):
            if binary:
                f.write(word.encode() + b" " + vec.astype("<f4").tobytes() + b"\n")
            else:
                f.write((word + " " + " ".join(repr(float(v)) for v in vec) + "\n").encode())
    wv = WordVectors.from_word2vec(path)
    elmo = Elmo(bilm, word_vectors=wv)
    assert elmo.output_dim == 21
    tokens = SENTENCES[1]  # The bank raised rates: "The" by lowercase, two unknown words
    static = np.stack([table[2], table[0], np.zeros(5), np.zeros(5)]).astype(np.float32)
    layers = _by_hand(bilm, tokens)
    for mode, elmo_part in [
        ("top", layers[2]),
        ("average", layers.mean(0)),
        ("concat", np.concatenate(list(layers), -1)),
    ]:
        got = elmo.embed_sentence(tokens, mode=mode)
        np.testing.assert_allclose(got, np.concatenate([elmo_part, static], -1), atol=1e-5, rtol=0)
    rep = elmo([tokens, ["river"]])["elmo_representations"][0]
    assert rep.shape == (2, 4, 21)
    np.testing.assert_array_equal(rep[0, :, 16:].detach().numpy(), static)
    np.testing.assert_array_equal(rep[1, 0, 16:].detach().numpy(), table[1])
    assert elmo.embed_sentence([], mode="top").shape == (0, 21)
    with pytest.raises(ElmoError, match="mode 'all'"):
        elmo.embed_sentences([tokens], mode="all")


def test_from_files_and_checkpoint(bilm, tmp_path):
    bilm.to_hdf5(tmp_path / "options.json", tmp_path / "weights.hdf5")
    expected = Elmo(bilm).embed_sentences(SENTENCES, mode="all")
    from_files = Elmo.from_files(tmp_path / "options.json", tmp_path / "weights.hdf5")
    # a Lightning checkpoint of the training module: options in hparams, biLM weights under bilm.
    state = {f"bilm.{k}": v for k, v in bilm.state_dict().items()}
    state["softmax.weight"] = torch.zeros(3, 8)
    ckpt = {"hyper_parameters": {"options": bilm.options.to_dict(), "lr": 0.2}, "state_dict": state}
    torch.save(ckpt, tmp_path / "last.ckpt")
    from_ckpt = Elmo.from_checkpoint(tmp_path / "last.ckpt")
    for elmo in (from_files, from_ckpt):
        for a, b in zip(elmo.embed_sentences(SENTENCES, mode="all"), expected, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_bad_model_files(bilm, tmp_path):
    with pytest.raises(OptionsError, match="options file not found"):
        Elmo.from_files(tmp_path / "nope.json", tmp_path / "nope.hdf5")
    bilm.to_hdf5(tmp_path / "options.json", tmp_path / "weights.hdf5")
    with pytest.raises(WeightsFileError, match="weights file not found"):
        Elmo.from_files(tmp_path / "options.json", tmp_path / "nope.hdf5")
    (tmp_path / "empty.hdf5").write_bytes(b"")
    with pytest.raises(WeightsFileError, match="not an HDF5 file"):
        Elmo.from_files(tmp_path / "options.json", tmp_path / "empty.hdf5")
    other = json.loads((tmp_path / "options.json").read_text())
    other["lstm"]["projection_dim"] = 12
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(WeightsFileError, match="use the options.json written with these weights"):
        Elmo.from_files(tmp_path / "other.json", tmp_path / "weights.hdf5")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        Elmo.from_checkpoint(tmp_path / "nope.ckpt")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="cannot be read as a checkpoint"):
        Elmo.from_checkpoint(tmp_path / "empty.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        Elmo.from_checkpoint(tmp_path / "plain.ckpt")
    state = {f"bilm.{k}": v for k, v in bilm.state_dict().items()}
    torch.save({"hyper_parameters": {"options": other}, "state_dict": state}, tmp_path / "bad.ckpt")
    with pytest.raises(ElmoError, match="do not match its options"):
        Elmo.from_checkpoint(tmp_path / "bad.ckpt")


def test_bad_inputs(bilm):
    elmo = Elmo(bilm)
    with pytest.raises(ElmoError, match="not one of"):
        elmo.embed_sentences(SENTENCES, mode="bottom")
    with pytest.raises(ElmoError, match="tokenized sentences"):
        elmo.embed_sentences(["a sentence as a string"])


def test_stateful_reproduces_original_tools(elmo_fixtures):
    """Stateful mode from a zero start, batches in the given order: the fixture's top layers
    within 1e-5."""
    elmo = Elmo.from_files(
        elmo_fixtures / "options.json",
        elmo_fixtures / "lm_weights.hdf5",
        stateful=True,
        warm_start=False,
    )
    sentences = json.loads((elmo_fixtures / "sentences.json").read_text())
    batches = [[sentences[k][i].split() for k in range(3)] for i in range(10)]
    tops = [elmo.embed_sentences(batch, mode="top", batch_size=3) for batch in batches]
    for k in range(3):
        with h5py.File(elmo_fixtures / f"lm_embeddings_{k}.hdf5", "r") as f:
            for i in range(10):
                ref = f[str(i)][...]  # (2, n, P): forward top, backward top
                np.testing.assert_allclose(
                    tops[i][k], np.concatenate([ref[0], ref[1]], -1), atol=1e-5, rtol=0
                )
    # stateless (the default) does not depend on what came before
    stateless = Elmo.from_files(elmo_fixtures / "options.json", elmo_fixtures / "lm_weights.hdf5")
    first = stateless.embed_sentences(batches[3], mode="top")
    stateless.embed_sentences(batches[0], mode="top")
    for a, b in zip(stateless.embed_sentences(batches[3], mode="top"), first, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_matches_cpu(bilm, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("the\nbank\nriver\n")
    cpu = Elmo(bilm).embed_sentences(SENTENCES, mode="all")
    gpu_elmo = Elmo(bilm, token_cache=TokenCache.build(bilm, vocab)).to("cuda")
    gpu = gpu_elmo.embed_sentences(SENTENCES, mode="all")
    for a, b in zip(gpu, cpu, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
    out = gpu_elmo(SENTENCES[:2])
    assert out["elmo_representations"][0].device.type == "cuda"
