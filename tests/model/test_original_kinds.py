"""Parity with the original trainer for the models beside the character biLM: a word-input biLM,
a tied one (embedding = softmax) and a forward LM alone (character inputs, no highway, no clips).

The fixtures in ``tests/fixtures/original_<kind>/`` were made by ``scripts/original_fixtures.py``
running the original TensorFlow trainer (``dump_weights`` and its own activations); no
TensorFlow is needed here.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from elmo_lm.formats.options import BiLMOptions
from elmo_lm.model.bilm import BiLM
from elmo_lm.model.softmax import Softmax

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
KINDS = ("word", "tied", "forward")


def _fixture(kind: str) -> Path:
    return FIXTURES / f"original_{kind}"


def _bilm(kind: str) -> BiLM:
    d = _fixture(kind)
    return BiLM.from_hdf5(d / "options.json", d / "dumped_weights.hdf5", warm_start=False)


def _window(kind: str) -> dict[str, np.ndarray]:
    with h5py.File(_fixture(kind) / "activations.hdf5", "r") as f:
        return {k: f["window"][k][...] for k in f["window"]}


def _softmax(kind: str, bilm: BiLM) -> Softmax:
    with h5py.File(_fixture(kind) / "dumped_weights_softmax_weights.hdf5", "r") as f:
        weight, bias = f["softmax/W"][...], f["softmax/b"][...]
    softmax = Softmax(weight.shape[0], weight.shape[1], sampled=False).eval()
    with torch.no_grad():
        softmax.weight.copy_(torch.from_numpy(weight))
        softmax.bias.copy_(torch.from_numpy(bias)[:, None])
    return softmax


def test_the_fixtures_are_the_kinds_they_name_and_small():
    word = BiLMOptions.from_json(_fixture("word") / "options.json")
    tied = BiLMOptions.from_json(_fixture("tied") / "options.json")
    forward = BiLMOptions.from_json(_fixture("forward") / "options.json")
    assert word.word_inputs and word.bidirectional and not word.share_embedding_softmax
    assert tied.word_inputs and tied.share_embedding_softmax
    assert not forward.word_inputs and not forward.bidirectional
    # The original's readings of the keys the forward LM's options leave out.
    assert forward.char_cnn.n_highway == 0
    assert forward.lstm.cell_clip is None and forward.lstm.proj_clip is None
    for kind in KINDS:
        size = sum(p.stat().st_size for p in _fixture(kind).iterdir())
        assert size < 600_000, (kind, size)


@pytest.mark.parametrize("kind", ["word", "tied"])
def test_the_inference_representations_of_a_word_bilm_match_the_originals(kind):
    bilm = _bilm(kind)
    sentences = json.loads((_fixture(kind) / "sentences.json").read_text())
    with torch.no_grad():
        out = bilm(bilm.batch_inputs(sentences))
    ours = torch.stack(out["layers"], 1).numpy()  # (n, L + 1, T, 2P)
    with h5py.File(_fixture(kind) / "activations.hdf5", "r") as f:
        theirs, mask = f["bilm/lm_embeddings"][...], f["bilm/mask"][...]
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(out["mask"].numpy(), mask)
    assert np.abs(ours - theirs).max() < 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_the_lm_outputs_and_losses_of_a_window_match_the_originals(kind):
    """The training graph in test mode (full softmax) on one window from a zero state."""
    bilm = _bilm(kind).eval()
    window = _window(kind)
    with torch.no_grad():
        if bilm.options.word_inputs:
            ids = (torch.from_numpy(window["token_ids"]).long(),)
            if bilm.options.bidirectional:
                ids += (torch.from_numpy(window["token_ids_reverse"]).long(),)
            embedded = bilm.word_embedding(ids[0] + 1)
            fwd, bwd, _ = bilm.lm_forward(None, None, word_ids=ids)
        else:  # the original's training inputs are char ids before the +1 shift
            chars = torch.from_numpy(window["tokens_characters"]).long() + 1
            embedded = bilm.embed_tokens(chars)
            fwd, bwd, _ = bilm.lm_forward(chars, None)
        softmax = _softmax(kind, bilm)
        losses = [softmax(fwd, torch.from_numpy(window["next_token_id"]).long())]
        if bwd is not None:
            losses.append(softmax(bwd, torch.from_numpy(window["next_token_id_reverse"]).long()))
    assert bwd is None if kind == "forward" else bwd is not None
    assert np.abs(embedded.numpy() - window["embedding_0"]).max() < 1e-5
    assert np.abs(fwd.numpy() - window["top_0"]).max() < 1e-5
    if bwd is not None:
        assert np.abs(bwd.numpy() - window["top_1"]).max() < 1e-5
    means = np.array([float(nll / n) for nll, n in losses])
    np.testing.assert_allclose(means, window["losses"], atol=1e-5)


def test_a_forward_lm_gives_half_width_layers():
    bilm = _bilm("forward")
    sentences = json.loads((_fixture("forward") / "sentences.json").read_text())
    with torch.no_grad():
        out = bilm(bilm.batch_inputs(sentences))
    p = bilm.options.lstm.projection_dim
    assert bilm.output_dim == p
    assert [layer.shape[-1] for layer in out["layers"]] == [p] * 3
    # Layer 0 is the token embedding once; its rows are the char CNN's.
    first = bilm.embed_tokens(bilm.batch_inputs([sentences[0]]))[0]
    assert torch.allclose(out["layers"][0][0, : len(sentences[0])], first, atol=1e-6)


def test_the_tied_fixture_has_one_matrix_for_embedding_and_softmax():
    with (
        h5py.File(_fixture("tied") / "dumped_weights.hdf5", "r") as w,
        h5py.File(_fixture("tied") / "dumped_weights_softmax_weights.hdf5", "r") as s,
    ):
        assert "softmax/W" not in w and "embedding" in w  # dump_weights leaves the softmax out
        np.testing.assert_array_equal(w["embedding"][...], s["softmax/W"][...])


@pytest.mark.parametrize("kind", KINDS)
def test_elmo_lms_writer_gives_back_the_originals_file(kind, tmp_path):
    """Names, shapes and values of ``dump_weights``' file, and its options' keys."""
    bilm = _bilm(kind)
    bilm.to_hdf5(tmp_path / "options.json", tmp_path / "weights.hdf5")
    with (
        h5py.File(_fixture(kind) / "dumped_weights.hdf5", "r") as a,
        h5py.File(tmp_path / "weights.hdf5", "r") as b,
    ):
        names = []
        a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        ours = []
        b.visititems(lambda n, o: ours.append(n) if isinstance(o, h5py.Dataset) else None)
        assert sorted(ours) == sorted(names)
        for name in names:
            np.testing.assert_array_equal(a[name][...], b[name][...])
    written = json.loads((tmp_path / "options.json").read_text())
    assert ("char_cnn" in written) == (kind == "forward")
    if kind == "forward":
        assert written["char_cnn"]["n_characters"] == 262
    assert written["bidirectional"] == (kind != "forward")
    assert written["share_embedding_softmax"] == (kind == "tied")


@pytest.mark.parametrize("kind", KINDS)
def test_the_writers_parity_with_the_original_was_checked_and_recorded(kind):
    """``scripts/original_fixtures.py check`` loads elmo_lm's export with the original's code
    (by hand, with TensorFlow) and records the largest difference here."""
    record = json.loads((_fixture(kind) / "fixture.json").read_text())
    diffs = record["writer_parity"]["max_abs_diff"]
    assert diffs and max(diffs.values()) < 1e-5
    if kind != "forward":
        assert "inference_lm_embeddings" in diffs


def _update_batch(window: dict, word_inputs: bool) -> dict:
    """The fixture's window as the loader's training batch (the original's char ids are before
    the +1 shift)."""
    batch = {"fwd_targets": window["next_token_id"], "bwd_targets": window["next_token_id"]}
    if "next_token_id_reverse" in window:
        batch["bwd_targets"] = window["next_token_id_reverse"]
    if word_inputs:
        batch["fwd_ids"] = window["token_ids"]
        batch["bwd_ids"] = window.get("token_ids_reverse", window["token_ids"])
    else:
        batch["fwd_chars"] = window["tokens_characters"] + 1
        batch["bwd_chars"] = window.get("tokens_characters_reverse", window["tokens_characters"])
    return {k: torch.from_numpy(np.asarray(v)).long() for k, v in batch.items()}


@pytest.mark.parametrize("softmax", ["full", "sampled"])
@pytest.mark.parametrize("kind", KINDS)
def test_three_training_steps_update_the_weights_as_the_originals_trainer(
    kind, softmax, tmp_path, monkeypatch
):
    """``scripts/original_fixtures.py update``: the original's ``train()`` optimizer (the gradient
    of ``loss * unroll_steps``, averaged, clipped, Adagrad) for three steps on the fixture's
    window from its weights, state carried, dropout 0; the full softmax, or the sampled one with
    the negatives (and expected counts) it drew, which ours is handed in the same order. Ours
    goes through ``ElmoLM.training_step``. Every weight after the third step agrees."""
    from elmo_lm.model.softmax import Softmax as SoftmaxModule
    from elmo_lm.training.gradients import clip_grad_norm
    from elmo_lm.training.module import ElmoLM

    d = _fixture(kind)
    source = _bilm(kind)
    options = source.options
    options.dropout = 0.0
    sampled = softmax == "sampled"
    tokens = (d / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    torch.manual_seed(0)
    # The original never resets a row's carried state.
    module = ElmoLM(
        {**options.to_dict(), "sample_softmax": sampled}, tokens, reset_state_prob=0.0
    ).train()
    assert module.sampled == sampled
    module.bilm.load_state_dict(source.state_dict())
    loaded = _softmax(kind, source)
    with torch.no_grad():
        module.softmax.weight.copy_(loaded.weight)
        module.softmax.bias.copy_(loaded.bias)
    optimizer = module.configure_optimizers()
    batch = _update_batch(_window(kind), options.word_inputs)
    module._log_step = False
    with h5py.File(d / ("update_sampled.hdf5" if sampled else "update.hdf5"), "r") as f:
        want_losses, want_norms = f["losses"][...], f["grad_norms"][...]
        after = {}
        f["after"].visititems(
            lambda n, o: after.update({n: o[...]}) if isinstance(o, h5py.Dataset) else None
        )
        drawn = f.get("negatives", {})  # the sampled softmax's, step by step, fwd then bwd
        negatives = [
            {k: torch.from_numpy(v[...]) for k, v in drawn[str(i)].items()}
            for i in range(len(drawn))
        ]

    def recorded(self, targets, dtype):
        drawn = negatives.pop(0)
        log_q = [drawn["true_expected"].log().to(dtype), drawn["sampled_expected"].log().to(dtype)]
        assert log_q[0].shape == targets.shape
        return drawn["sampled"].long(), log_q

    monkeypatch.setattr(SoftmaxModule, "draw_negatives", recorded)
    losses, norms = [], []
    for step in range(len(want_losses)):
        optimizer.zero_grad(set_to_none=True)
        loss = module.training_step({**batch, "stream_id": 0, "reset": step == 0}, step)
        loss.backward()
        module.on_after_backward()
        norms.append(float(clip_grad_norm(module.parameters(), options.all_clip_norm_val)))
        optimizer.step()
        losses.append(float(loss) / options.unroll_steps)
    assert not negatives
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    np.testing.assert_allclose(norms, want_norms, rtol=1e-4)
    module.bilm.to_hdf5(tmp_path / "options.json", tmp_path / "weights.hdf5")
    with h5py.File(tmp_path / "weights.hdf5", "r") as ours:
        for name, value in after.items():
            if name.startswith("softmax/"):
                got = module.softmax.weight if name == "softmax/W" else module.softmax.bias[:, 0]
                got = got.detach().numpy()
            else:
                got = ours[name][...][: value.shape[0]] if name == "char_embed" else ours[name][...]
            assert got.shape == value.shape, name
            np.testing.assert_allclose(got, value, atol=2e-6, rtol=1e-4, err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_the_initial_weights_follow_the_originals_initialisers(kind, tmp_path):
    """``init_stats.json`` (``scripts/original_fixtures.py update``): the original's weights as
    its initialisers draw them for the fixture's options; ours, drawn fresh, have the same
    spread per variable (std within 15%, within 50% under 256 values, where a sample is noisy)
    and no wider range, and the same constants (zero biases, the highway carry bias)."""
    from elmo_lm.training.module import ElmoLM

    d = _fixture(kind)
    stats = json.loads((d / "init_stats.json").read_text())
    options = BiLMOptions.from_json(d / "options.json")
    tokens = (d / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    torch.manual_seed(0)
    module = ElmoLM(options.to_dict(), tokens)
    module.bilm.to_hdf5(tmp_path / "options.json", tmp_path / "weights.hdf5")
    with h5py.File(tmp_path / "weights.hdf5", "r") as f:
        ours = {name: f[name][...] for name in stats if not name.startswith("softmax/")}
    ours["softmax/W"] = module.softmax.weight.detach().numpy()
    ours["softmax/b"] = module.softmax.bias.detach().numpy()
    for name, want in stats.items():
        got = ours[name]
        assert got.size == int(np.prod(want["shape"])), name
        if want["std"] == 0:
            assert got.std() == 0 and np.abs(got).max() == pytest.approx(want["absmax"]), name
            continue
        tolerance = 0.15 if got.size >= 256 else 0.5
        assert got.std() == pytest.approx(want["std"], rel=tolerance), name
        assert np.abs(got).max() <= 1.5 * want["absmax"], name
