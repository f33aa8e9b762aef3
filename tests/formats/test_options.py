"""The options of a biLM: the table of the options a run sets (``RUN_OPTIONS``)."""

from __future__ import annotations

import dataclasses

from elmo_lm.formats.options import RUN_OPTIONS, BiLMOptions, RunOption


def test_run_options_are_top_level_options_each_from_one_place():
    top = {f.name for f in dataclasses.fields(BiLMOptions)} - {"lstm", "char_cnn"}
    keys = [o.key for o in RUN_OPTIONS]
    assert len(set(keys)) == len(keys) and set(keys) <= top
    assert set(keys) == top - {"bidirectional", "dropout"}  # those two: conf/model
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
