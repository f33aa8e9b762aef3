"""The one tokenizer: Moses as the published models' corpus, whitespace, the spec's file."""

from __future__ import annotations

import json

import pytest

from elmo_lm.formats.tokenize import (
    PUBLISHED,
    TOKENIZER_FILE,
    TokenizerSpec,
    attached_punctuation,
    make_tokenizer,
)


def test_moses_splits_punctuation_keeps_case_and_quotes():
    tokenize = make_tokenizer(PUBLISHED)
    assert tokenize("Hello, world.") == ["Hello", ",", "world", "."]
    # Moses' English clitics: "don't" -> "don" "'t"; no HTML escaping ("'" stays "'")
    assert tokenize("I don't know John's dog.") == [
        "I",
        "don",
        "'t",
        "know",
        "John",
        "'s",
        "dog",
        ".",
    ]
    assert tokenize('A "well-known" U.S. rule & more...') == [
        "A", '"', "well-known", '"', "U.S.", "rule", "&", "more", "...",
    ]  # fmt: skip
    assert tokenize("   ") == []


def test_normalization_is_one_switch():
    decomposed = "Cafe\u0301 ok"
    assert make_tokenizer(TokenizerSpec("whitespace"))(decomposed) == ["Caf\u00e9", "ok"]
    kept = make_tokenizer(TokenizerSpec("whitespace", normalize=None))(decomposed)
    assert kept == ["Cafe\u0301", "ok"]


def test_spec_round_trip(tmp_path):
    spec = TokenizerSpec("moses", "de", None)
    assert TokenizerSpec.from_dict(spec.to_dict()) == spec
    spec.save(tmp_path / TOKENIZER_FILE)
    assert TokenizerSpec.load(tmp_path / TOKENIZER_FILE) == spec
    assert json.loads((tmp_path / TOKENIZER_FILE).read_text())["lang"] == "de"
    assert TokenizerSpec.from_dict({}) == TokenizerSpec()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"nam": "moses"}, r"^t.json: unknown tokenizer key 'nam'"),
        ({"name": "spacy"}, r"^t.json: tokenizer 'spacy' is not one of moses, whitespace$"),
        ({"normalize": "NFX"}, r"^t.json: normalize 'NFX'"),
        ([1], r"^t.json: a tokenizer spec must be a JSON object"),
    ],
)
def test_bad_spec_is_one_line(data, match):
    with pytest.raises(ValueError, match=match) as info:
        TokenizerSpec.from_dict(data, "t.json")
    assert "\n" not in str(info.value)


def test_attached_punctuation_tells_raw_from_tokenized():
    raw = "Hello, world. He said U.S. and e.g. yes.".split()
    assert attached_punctuation(raw) == pytest.approx(3 / 8)  # Hello, world. yes.
    assert attached_punctuation(make_tokenizer(PUBLISHED)(" ".join(raw))) == 0.0
    assert attached_punctuation([]) == 0.0
