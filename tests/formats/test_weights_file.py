"""Writing and reading the options.json + weights.hdf5 pair."""

import json

import h5py
import numpy as np
import pytest
import torch

from elmo_lm import BiLM, batch_to_ids
from elmo_lm.formats.options import BiLMOptions, OptionsError
from elmo_lm.formats.weights_file import WeightsFileError

SENTENCES = [
    ["The", "bank", "of", "the", "river", "."],
    ["A", "bat", "flew", "."],
    ["Über", "naïve", "x" * 70],
]


def _layers(bilm):
    with torch.no_grad():
        return bilm.eval()(batch_to_ids(SENTENCES))["layers"]


def test_fixture_round_trip_is_identical(elmo_fixtures, tmp_path):
    bilm = BiLM.from_hdf5(elmo_fixtures / "options.json", elmo_fixtures / "lm_weights.hdf5")
    bilm.to_hdf5(tmp_path / "options.json", tmp_path / "weights.hdf5")
    again = BiLM.from_hdf5(tmp_path / "options.json", tmp_path / "weights.hdf5")
    for a, b in zip(_layers(bilm), _layers(again)):
        assert torch.equal(a, b)
    with (
        h5py.File(elmo_fixtures / "lm_weights.hdf5", "r") as ref,
        h5py.File(tmp_path / "weights.hdf5", "r") as out,
    ):
        names = []
        ref.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for name in names:
            assert out[name].dtype == np.float32
            np.testing.assert_array_equal(out[name][...], ref[name][...])


@pytest.mark.parametrize(
    "overrides",
    [
        dict(
            use_skip_connections=False,
            n_layers=3,
            activation="tanh",
            cell_clip=None,
            proj_clip=None,
        ),
        dict(
            n_highway=0, filters=[[2, 5], [4, 3]], char_dim=3, dim=16, projection_dim=6, n_layers=1
        ),
    ],
)
def test_fresh_model_in_other_shapes_round_trips(tiny_options, tmp_path, overrides):
    bilm = BiLM(tiny_options(**overrides))
    bilm.to_hdf5(tmp_path / "options.json", tmp_path / "weights.hdf5")
    written = json.loads((tmp_path / "options.json").read_text())
    assert written["char_cnn"]["n_characters"] == 262
    assert written["lstm"]["use_skip_connections"] == overrides.get("use_skip_connections", True)
    again = BiLM.from_hdf5(tmp_path / "options.json", tmp_path / "weights.hdf5")
    for a, b in zip(_layers(bilm), _layers(again)):
        assert torch.equal(a, b)
    with h5py.File(tmp_path / "weights.hdf5", "r") as f:
        assert "CNN_proj/W_proj" in f and "RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/W_P_0" in f


def test_n_characters_261_and_null_clips_load(tmp_path, elmo_fixtures):
    options = json.loads((elmo_fixtures / "options.json").read_text())
    options["char_cnn"]["n_characters"] = 261
    options["lstm"]["cell_clip"] = None
    (tmp_path / "options.json").write_text(json.dumps(options))
    bilm = BiLM.from_hdf5(tmp_path / "options.json", elmo_fixtures / "lm_weights.hdf5")
    assert bilm.options.lstm.cell_clip is None


def test_no_half_file_is_left_when_writing_fails(tiny_options, tmp_path, monkeypatch):
    bilm = BiLM(tiny_options())
    target = tmp_path / "weights.hdf5"
    target.write_bytes(b"old")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", broken)
    with pytest.raises(OSError):
        bilm.to_hdf5(tmp_path / "options.json", target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.hdf5"]


def _write_pair(tmp_path, options):
    bilm = BiLM(options)
    bilm.to_hdf5(tmp_path / "options.json", tmp_path / "weights.hdf5")
    return tmp_path / "options.json", tmp_path / "weights.hdf5"


def test_weights_that_do_not_match_the_options_are_refused(tiny_options, tmp_path):
    opts, weights = _write_pair(tmp_path, tiny_options())
    bigger = json.loads(opts.read_text())
    bigger["lstm"]["dim"] = 64
    opts.write_text(json.dumps(bigger))
    with pytest.raises(WeightsFileError, match=r"W_0.*\(16, 128\).*\(16, 256\)") as err:
        BiLM.from_hdf5(opts, weights)
    assert "\n" not in str(err.value) and "weights.hdf5" in str(err.value)


def test_missing_dataset_and_extra_layer_are_refused(tiny_options, tmp_path):
    opts, weights = _write_pair(tmp_path, tiny_options())
    with h5py.File(weights, "a") as f:
        del f["CNN_proj/b_proj"]
    with pytest.raises(WeightsFileError, match="CNN_proj/b_proj.*missing"):
        BiLM.from_hdf5(opts, weights)
    opts, weights = _write_pair(tmp_path, tiny_options(n_layers=3))
    fewer = json.loads(opts.read_text())
    fewer["lstm"]["n_layers"] = 2
    opts.write_text(json.dumps(fewer))
    with pytest.raises(WeightsFileError, match="Cell2"):
        BiLM.from_hdf5(opts, weights)


def test_not_hdf5_and_bad_options_are_refused(tiny_options, tmp_path):
    opts, weights = _write_pair(tmp_path, tiny_options())
    with pytest.raises(WeightsFileError, match="not an HDF5 file"):
        BiLM.from_hdf5(opts, opts)
    with pytest.raises(WeightsFileError, match="not found"):
        BiLM.from_hdf5(opts, tmp_path / "nope.hdf5")
    with pytest.raises(OptionsError, match="not found"):
        BiLMOptions.from_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"char_cnn": {}}')  # no lstm (no char_cnn: words)
    with pytest.raises(OptionsError, match="missing key 'lstm'"):
        BiLMOptions.from_json(tmp_path / "bad.json")


def _datasets(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.update({n: o[...]}) if isinstance(o, h5py.Dataset) else None)
    return out


W_P_0 = "RNN_{}/RNN/MultiRNNCell/Cell{}/LSTMCell/W_P_0"


@pytest.mark.parametrize(
    "overrides, no_cnn_proj, no_w_p_0",
    [
        (dict(filters=[[1, 3], [2, 5]]), True, False),  # filters total projection_dim 8
        (dict(dim=8), False, True),  # lstm.dim equals projection_dim 8
        (dict(filters=[[1, 3], [2, 5]], dim=8), True, True),
    ],
)
def test_sizes_that_agree_give_no_projection_and_round_trip(
    tiny_options, tmp_path, overrides, no_cnn_proj, no_w_p_0
):
    """As the original tools: no CNN_proj when the filters total projection_dim, no W_P_0 when
    lstm.dim equals it. The file still holds them as identities (AllenNLP requires them)."""
    torch.manual_seed(0)
    bilm = BiLM(tiny_options(**overrides))
    names = [n for n, _ in bilm.named_parameters()]
    assert any("proj_" in n for n in names) != no_cnn_proj
    assert any("projections" in n for n in names) != no_w_p_0
    opts, weights = tmp_path / "options.json", tmp_path / "weights.hdf5"
    bilm.to_hdf5(opts, weights)
    again = BiLM.from_hdf5(opts, weights)
    for a, b in zip(_layers(bilm), _layers(again)):
        assert torch.equal(a, b)
    written = _datasets(weights)
    identity = np.eye(8, dtype=np.float32)
    if no_cnn_proj:
        np.testing.assert_array_equal(written["CNN_proj/W_proj"], identity)
        np.testing.assert_array_equal(written["CNN_proj/b_proj"], np.zeros(8, np.float32))
    if no_w_p_0:
        for d in range(2):
            for layer in range(2):
                np.testing.assert_array_equal(written[W_P_0.format(d, layer)], identity)
    # The original tools write no dataset for a projection they do not have: that loads too.
    with h5py.File(weights, "a") as f:
        if no_cnn_proj:
            del f["CNN_proj"]
        if no_w_p_0:
            for d in range(2):
                for layer in range(2):
                    del f[W_P_0.format(d, layer)]
    without = BiLM.from_hdf5(opts, weights)
    for a, b in zip(_layers(bilm), _layers(without)):
        assert torch.equal(a, b)


def test_a_real_projection_where_the_options_have_none_is_refused(tiny_options, tmp_path):
    bilm = BiLM(tiny_options(filters=[[1, 3], [2, 5]]))
    opts, weights = tmp_path / "options.json", tmp_path / "weights.hdf5"
    bilm.to_hdf5(opts, weights)
    with h5py.File(weights, "a") as f:
        f["CNN_proj/W_proj"][0, 1] = 0.5
    with pytest.raises(WeightsFileError, match="CNN_proj/W_proj.*real projection") as err:
        BiLM.from_hdf5(opts, weights)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(filters=[[1, 3], [2, 4]]), "filters total 7, fewer than lstm.projection_dim 8"),
        (dict(dim=6), "lstm.dim 6 is smaller than lstm.projection_dim 8"),
    ],
)
def test_projections_that_would_widen_are_refused_at_config_time(tiny_options, overrides, message):
    """The original tools assert n_filters > projection_dim and cannot project an LSTM up."""
    with pytest.raises(OptionsError, match=message):
        BiLM(tiny_options(**overrides))
