"""The Kneser-Ney baseline is a proper distribution; the fortunes corpus tokenizer and splitter."""

import math

import pytest

from tests.helpers import load_script

kn = load_script("bench/kn5_baseline.py")
corpus = load_script("scripts/make_real_corpus.py")

TINY = """the cat sat on the mat .
the dog sat on the log .
the cat saw the dog .
a dog saw a cat on the mat .
the cat sat .
the cat sat .
a bird sang on the log .
"""


@pytest.fixture
def train(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(TINY)
    return kn.read_sentences(path)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_sum_to_one(train, order):
    lm = kn.KneserNey(train, order)
    assert lm.vocab == {w for s in train for w in s} | {"</S>", "<UNK>"}
    histories = [
        (),
        ("<S>",),
        ("<S>", "the", "cat"),
        ("the", "cat", "sat", "on"),  # seen at every order
        ("a", "dog", "saw", "a"),
        ("on", "the", "zebra"),  # an unknown word: <UNK> history
        ("mat", "."),  # only </S> follows "."
    ]
    for history in histories:
        probs = [lm.prob(w, history) for w in lm.vocab]
        assert min(probs) > 0
        assert math.fsum(probs) == pytest.approx(1.0, abs=1e-9), history
    assert lm.prob("zebra", ("the",)) == lm.prob("<UNK>", ("the",))


def test_discounts_from_counts_of_counts():
    # n1=4, n2=2, n3=1, n4=1: Y = 4 / (4 + 2*2) = 0.5
    counts = {"a": 1, "b": 1, "c": 1, "d": 1, "e": 2, "f": 2, "g": 3, "h": 4, "i": 9}
    d1, d2, d3 = kn.discounts(counts)
    assert (d1, d2, d3) == pytest.approx((1 - 2 * 0.5 * 2 / 4, 2 - 3 * 0.5 * 1 / 2, 3 - 4 * 0.5))
    assert kn.discounts({"a": 1, "b": 2}) == kn.FALLBACK_DISCOUNTS  # no n3, n4


def test_evaluate_counts_end_of_sentence_and_oovs(train):
    lm = kn.KneserNey(train, 3)
    result = lm.evaluate([["the", "cat", "purred", "."], ["a", "dog", "."]])
    assert result["tokens"] == 5 + 4  # words + </S>, never <S>
    assert result["oov_rate"] == pytest.approx(1 / 7)
    assert 1 < result["perplexity"] < len(lm.vocab)


# The preset tokenizes with the project's one tokenizer (elmo_lm.formats.tokenize: Moses, as the
# 1B Word Benchmark and the published models were), so these are Moses's tokens.
@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ('"I don\'t know," he said.', '" I don \'t know , " he said .'.split()),
        (
            "Mr. Smith paid $1,000 at 7:30 (or so)...",
            "Mr. Smith paid $ 1,000 at 7 : 30 ( or so ) ...".split(),
        ),
        (
            "We can't; they'd won't -- it's 3.14 in the U.S.",
            "We can 't ; they 'd won 't -- it 's 3.14 in the U.S.".split(),
        ),
        ("The dogs' bone: yes :-) ok?", "The dogs ' bone : yes : - ) ok ?".split()),
        ("'Tis well.'", "'Tis well . '".split()),
    ],
)
def test_tokenize(text, tokens):
    assert corpus.tokenize(text) == tokens


def test_split_sentences():
    text = (
        'Hello world. "Who\'s there?" she asked. Mr. Smith came, e.g. Jones too. '
        "J. R. R. Tolkien wrote it! It was 1999. (Really.) The end"
    )
    assert corpus.split_sentences(text) == [
        "Hello world.",
        '"Who\'s there?" she asked.',
        "Mr. Smith came, e.g. Jones too.",
        "J. R. R. Tolkien wrote it!",
        "It was 1999.",
        "(Really.)",
        "The end",
    ]


def test_corpus_from_fortune_files(tmp_path):
    (tmp_path / "wisdom").write_text(
        "A fool and his money are soon parted.  Then he\nwrites a book.\n"
        "\t\t-- Anonymous\n%\n"
        "   /\\_/\\\n  ( o.o )\n   > ^ <\n%\n"  # ASCII art
        "A fool and his money are soon parted.\n"  # a duplicate sentence
    )
    (tmp_path / "wisdom.dat").write_bytes(b"\x00\x01")
    assert corpus.corpus_sentences(tmp_path) == [
        "A fool and his money are soon parted .".split(),
        "Then he writes a book .".split(),
    ]
    with pytest.raises(SystemExit, match="apt-get install fortunes"):
        corpus.corpus_sentences(tmp_path / "missing")
