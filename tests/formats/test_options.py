"""The options of a biLM: the table of the options a run sets (``RUN_OPTIONS``), and what an
``options.json`` may hold (the original trainer's keys, each of its type)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from elmo_lm.formats.options import RUN_OPTIONS, BiLMOptions, OptionsError, RunOption
from tests.helpers import fixtures_dir


def test_run_options_are_top_level_options_each_from_one_place():
    top = {f.name for f in dataclasses.fields(BiLMOptions)} - {"lstm", "char_cnn"}
    keys = [o.key for o in RUN_OPTIONS]
    assert len(set(keys)) == len(keys) and set(keys) <= top
    model = {"bidirectional", "dropout", "share_embedding_softmax", "sample_softmax"}
    assert set(keys) == top - model  # those: conf/model
    for option in RUN_OPTIONS:
        assert (option.config is None) != (option.counted is None), option
        assert option.source == (option.config or option.counted)


def test_the_module_options_are_those_of_earlier_checkpoints_module_arguments():
    module = {o.module_key: o.key for o in RUN_OPTIONS if o.module_key is not None}
    assert module == {
        "n_negative_samples": "n_negative_samples_batch",
        "clip_norm": "all_clip_norm_val",
    }
    assert RunOption("x", config="data.batch_size").module_key is None
    assert RunOption("x", counted="the corpus").module_key is None


# What options.json may hold: every key the original trainer writes or reads, with its type.

ORIGINAL_TRAINER_OPTIONS = {  # bin/train_elmo.py's options, with the keys training.py reads
    "bidirectional": True,
    "char_cnn": {
        "activation": "relu",
        "embedding": {"dim": 16},
        "filters": [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]],
        "max_characters_per_token": 50,
        "n_characters": 261,
        "n_highway": 2,
    },
    "dropout": 0.1,
    "lstm": {
        "cell_clip": 3,
        "dim": 4096,
        "n_layers": 2,
        "proj_clip": 3,
        "projection_dim": 512,
        "use_skip_connections": True,
    },
    "all_clip_norm_val": 10.0,
    "n_epochs": 10,
    "n_train_tokens": 768648884,
    "batch_size": 128,
    "n_tokens_vocab": 793471,
    "unroll_steps": 20,
    "n_negative_samples_batch": 8192,
    "learning_rate": 0.2,
    "sample_softmax": True,
    "share_embedding_softmax": False,
}


def _with(path: str, value) -> dict:
    data = json.loads(json.dumps(ORIGINAL_TRAINER_OPTIONS))
    *parents, key = path.split(".")
    where = data
    for parent in parents:
        where = where[parent]
    where[key] = value
    return data


def test_every_key_of_the_original_trainer_is_accepted():
    options = BiLMOptions.from_dict(ORIGINAL_TRAINER_OPTIONS)
    assert options.lstm.cell_clip == 3 and options.n_train_tokens == 768648884
    assert BiLMOptions.from_dict(BiLMOptions().to_dict()) == BiLMOptions()  # what we write


def test_the_reference_options_are_accepted():
    path = fixtures_dir()
    if path is None:
        pytest.skip("the reference fixtures are not here (ELMO_FIXTURES)")
    assert BiLMOptions.from_json(path / "options.json").lstm.projection_dim == 16


@pytest.mark.parametrize(
    ("key", "nearest"),
    [
        ("lstm.projecton_dim", "lstm.projection_dim"),
        ("lstm.cell_clpi", "lstm.cell_clip"),
        ("dropuot", "dropout"),
        ("char_cnn.n_higway", "char_cnn.n_highway"),
        ("char_cnn.embedding.dimm", "char_cnn.embedding.dim"),
        ("learning_rat", "learning_rate"),
    ],
)
def test_an_unknown_key_is_refused_naming_it_and_the_nearest_known_one(tmp_path, key, nearest):
    path = tmp_path / "options.json"
    path.write_text(json.dumps(_with(key, 1)))
    with pytest.raises(OptionsError) as error:
        BiLMOptions.from_json(path)
    message = str(error.value)
    assert message.startswith(f"{path}: unknown key {key}; did you mean {nearest}?"), message
    assert "\n" not in message


def test_an_unknown_key_far_from_any_lists_the_known_ones():
    with pytest.raises(
        OptionsError, match=r"unknown key lstm\.zzz; the keys of lstm are cell_clip"
    ):
        BiLMOptions.from_dict(_with("lstm.zzz", 1))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("lstm.dim", "256", r"lstm\.dim is \"256\" \(a string\); it must be an integer"),
        ("lstm.n_layers", 2.0, r"lstm\.n_layers is 2\.0 \(a number\); it must be an integer"),
        ("lstm.dim", True, r"lstm\.dim is true \(true/false\); it must be an integer"),
        ("lstm.use_skip_connections", 1, r"is 1 \(an integer\); it must be true or false"),
        (
            "lstm.cell_clip",
            "3",
            r"lstm\.cell_clip is \"3\" \(a string\); it must be a number or null",
        ),
        ("dropout", None, r"dropout is null; it must be a number"),
        (
            "char_cnn.activation",
            1,
            r"char_cnn\.activation is 1 \(an integer\); it must be a string",
        ),
        (
            "char_cnn.filters",
            [[1, "32"]],
            r"char_cnn\.filters is \[\[1, \"32\"\]\] .*\[width, n_filters\]",
        ),
        (
            "char_cnn.embedding",
            16,
            r"char_cnn\.embedding is 16 \(an integer\); it must be an object",
        ),
        ("lstm", [], r"lstm is \[\] \(a list\); it must be an object"),
        (
            "sample_softmax",
            "yes",
            r"sample_softmax is \"yes\" \(a string\); it must be true or false",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_key_value_and_type(key, value, message):
    with pytest.raises(OptionsError, match=message) as error:
        BiLMOptions.from_dict(_with(key, value), source="options.json")
    assert str(error.value).startswith("options.json: ") and "\n" not in str(error.value)


def test_a_number_field_takes_an_integer_and_a_clip_takes_null():
    options = BiLMOptions.from_dict(_with("lstm.cell_clip", None) | {"dropout": 0})
    assert options.lstm.cell_clip is None and options.dropout == 0
    assert BiLMOptions.from_dict(_with("all_clip_norm_val", 5)).all_clip_norm_val == 5


# The models beside the character biLM, and the original's readings of missing keys.


def test_no_char_cnn_is_a_word_input_model_and_its_options_json_has_none():
    data = _with("bidirectional", True)
    del data["char_cnn"]
    options = BiLMOptions.from_dict(data)
    assert options.word_inputs and options.char_cnn is None
    assert options.n_filters == 0 and not options.cnn_projection
    assert "char_cnn" not in options.to_dict()
    assert BiLMOptions.from_dict(options.to_dict()) == options


def test_a_null_char_cnn_is_refused_naming_the_way_to_word_inputs():
    with pytest.raises(OptionsError, match=r"char_cnn is null; leave the key out .*word inputs"):
        BiLMOptions.from_dict(_with("char_cnn", None))


def test_character_inputs_with_a_tied_softmax_are_refused_in_one_line():
    """The original refuses it too (``LanguageModel.__init__``)."""
    with pytest.raises(OptionsError, match="share_embedding_softmax .*characters") as info:
        BiLMOptions.from_dict(_with("share_embedding_softmax", True))
    assert "\n" not in str(info.value)


def test_a_forward_lm_alone_is_read_and_a_missing_bidirectional_stays_a_bilm():
    assert not BiLMOptions.from_dict(_with("bidirectional", False)).bidirectional
    data = json.loads(json.dumps(ORIGINAL_TRAINER_OPTIONS))
    del data["bidirectional"]
    assert BiLMOptions.from_dict(data).bidirectional  # as the original's inference reads it


@pytest.mark.parametrize(
    "section, key, original",
    [
        ("char_cnn", "n_highway", 0),  # cnn_options.get('n_highway'): no highway
        ("lstm", "cell_clip", None),  # .get('cell_clip'): no clipping
        ("lstm", "proj_clip", None),
        ("lstm", "n_layers", 1),  # .get('n_layers', 1)
        ("lstm", "use_skip_connections", False),  # .get('use_skip_connections'): none
    ],
)
def test_a_missing_key_is_read_as_the_original_reads_it(section, key, original):
    data = json.loads(json.dumps(ORIGINAL_TRAINER_OPTIONS))
    del data[section][key]
    options = BiLMOptions.from_dict(data)
    assert getattr(getattr(options, section), key) == original


def test_sample_softmax_and_share_embedding_softmax_are_kept():
    data = _with("sample_softmax", False)
    del data["char_cnn"]
    data["share_embedding_softmax"] = True
    options = BiLMOptions.from_dict(data)
    assert not options.sample_softmax and options.share_embedding_softmax
    assert options.to_dict()["sample_softmax"] is False
