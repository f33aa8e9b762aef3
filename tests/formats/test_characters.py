import pytest
import torch

from elmo_lm import batch_to_ids
from elmo_lm.formats.characters import token_to_char_ids


def test_ids_of_a_word_are_shifted_bytes_between_markers():
    ids = token_to_char_ids("ab")
    assert ids[:4] == (259, 98, 99, 260)
    assert set(ids[4:]) == {261}
    assert len(ids) == 50


def test_sentence_markers():
    assert token_to_char_ids("<S>")[:4] == (259, 257, 260, 261)
    assert token_to_char_ids("</S>")[:4] == (259, 258, 260, 261)


def test_unicode_is_utf8_bytes_and_long_tokens_are_truncated():
    ids = token_to_char_ids("é")
    assert ids[:4] == (259, 0xC3 + 1, 0xA9 + 1, 260)
    long = token_to_char_ids("x" * 100)
    assert long[0] == 259 and long[48] == ord("x") + 1 and long[49] == 260


def test_batch_is_padded_with_zero_rows():
    ids = batch_to_ids([["a", "b", "c"], ["d"]])
    assert ids.shape == (2, 3, 50) and ids.dtype == torch.long
    assert (ids[1, 1:] == 0).all() and (ids[1, 0] > 0).all()


@pytest.mark.parametrize("bad", [[], "a sentence", [["a", ""]], ["a b"]])
def test_bad_input_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="token|sentence"):
        batch_to_ids(bad)
