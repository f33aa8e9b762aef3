"""The softmax file (``elmo_lm.formats.softmax_file``): ``softmax/W`` (V, P) and ``softmax/b``
(V,) beside the weights, and rows copied into a new softmax by token."""

from __future__ import annotations

import h5py
import numpy as np
import torch

from elmo_lm.formats.softmax_file import (
    SoftmaxFileError,
    copy_rows_by_token,
    load_softmax,
    save_softmax,
    softmax_file_for,
    softmax_name,
    specials_first,
    vocab_file_for,
)
from elmo_lm.model.softmax import Softmax
from tests.helpers import one_line_error


def test_round_trip_keeps_rows_and_biases(tmp_path):
    weight, bias = torch.randn(5, 3), torch.randn(5, 1)
    path = tmp_path / "weights_softmax_weights.hdf5"
    save_softmax(path, weight, bias)
    with h5py.File(path, "r") as f:
        assert f["softmax/W"].shape == (5, 3) and f["softmax/W"].dtype == np.float32
        assert f["softmax/b"].shape == (5,) and f["softmax/b"].dtype == np.float32
    w, b = load_softmax(path, 5, 3)
    assert torch.equal(w, weight) and torch.equal(b, bias.reshape(-1))
    assert not list(tmp_path.glob(".*.tmp"))  # written under a temporary name, renamed


def test_mismatches_are_one_line(tmp_path):
    path = tmp_path / "s.hdf5"
    save_softmax(path, torch.zeros(5, 3), torch.zeros(5))
    assert "(6, 3)" in one_line_error(SoftmaxFileError, lambda: load_softmax(path, 6, 3))
    assert "projection_dim 4" in one_line_error(SoftmaxFileError, lambda: load_softmax(path, 5, 4))
    with h5py.File(tmp_path / "w_only.hdf5", "w") as f:
        f.create_dataset("softmax/W", data=np.zeros((5, 3), np.float32))
    message = one_line_error(SoftmaxFileError, lambda: load_softmax(tmp_path / "w_only.hdf5", 5, 3))
    assert "'softmax/b' is missing" in message
    (tmp_path / "text.hdf5").write_text("not hdf5")
    one_line_error(SoftmaxFileError, lambda: load_softmax(tmp_path / "text.hdf5", 5, 3))
    one_line_error(SoftmaxFileError, lambda: load_softmax(tmp_path / "none.hdf5", 5, 3))


def test_the_file_is_found_beside_the_weights(tmp_path):
    weights = tmp_path / "weights.hdf5"
    assert softmax_name(weights) == "weights_softmax_weights.hdf5"
    assert softmax_file_for(weights) is None
    save_softmax(tmp_path / "weights_softmax_weights.hdf5", torch.zeros(2, 2), torch.zeros(2))
    assert softmax_file_for(weights) == tmp_path / "weights_softmax_weights.hdf5"
    # the name AllenNLP published the original's under, beside its weights
    published = tmp_path / "elmo_2x4096_512_2048cnn_2xhighway_weights.hdf5"
    assert softmax_file_for(published) is None
    theirs = tmp_path / "elmo_2x4096_512_2048cnn_2xhighway_softmax_weights.hdf5"
    save_softmax(theirs, torch.zeros(2, 2), torch.zeros(2))
    assert softmax_file_for(published) == theirs


def test_rows_are_copied_by_token_and_new_tokens_keep_theirs():
    source_tokens = ["<S>", "</S>", "<UNK>", "a", "b", "c"]
    source_w, source_b = torch.randn(6, 4), torch.randn(6)
    tokens = ["<S>", "</S>", "<UNK>", "c", "new", "a"]  # another order, one token new
    torch.manual_seed(1)
    softmax = Softmax(len(tokens), 4, 2, False)
    fresh_w, fresh_b = softmax.weight.detach().clone(), softmax.bias.detach().clone()
    assert copy_rows_by_token(softmax, tokens, source_tokens, source_w, source_b) == 5
    for i, token in enumerate(tokens):
        if token == "new":
            assert torch.equal(softmax.weight[i], fresh_w[i])
            assert torch.equal(softmax.bias[i], fresh_b[i])
        else:
            j = source_tokens.index(token)
            assert torch.equal(softmax.weight[i], source_w[j])
            assert softmax.bias[i, 0] == source_b[j]


def test_the_specials_are_moved_first_with_their_rows():
    tokens = ["</S>", "the", "<S>", "<UNK>", "a"]
    weight, bias = torch.arange(10.0).reshape(5, 2), torch.arange(5.0)
    moved, w, b = specials_first(tokens, weight, bias)
    assert moved == ["<S>", "</S>", "<UNK>", "the", "a"]
    for i, token in enumerate(moved):
        assert torch.equal(w[i], weight[tokens.index(token)])
        assert b[i] == bias[tokens.index(token)]
    ours = ["<S>", "</S>", "<UNK>", "a"]
    assert specials_first(ours, weight[:4], bias[:4])[0] is ours  # as it was: no copy
    message = one_line_error(
        SoftmaxFileError, lambda: specials_first(["<S>", "a"], weight[:2], bias[:2], "v.txt")
    )
    assert message.startswith("v.txt: has no </S>, <UNK>; a softmax's vocabulary needs")


def test_the_vocabulary_is_vocab_txt_else_the_published_name(tmp_path):
    softmax = tmp_path / "elmo_x_softmax_weights.hdf5"
    message = one_line_error(SoftmaxFileError, lambda: vocab_file_for(softmax))
    assert "no vocab.txt (nor vocab-2016-09-10.txt) beside it" in message
    (tmp_path / "vocab-2016-09-10.txt").write_text("<S>\n")
    assert vocab_file_for(softmax) == tmp_path / "vocab-2016-09-10.txt"
    (tmp_path / "vocab.txt").write_text("<S>\n")
    assert vocab_file_for(softmax) == tmp_path / "vocab.txt"
