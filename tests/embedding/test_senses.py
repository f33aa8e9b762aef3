"""The WordNet sense dataset (read from the real Debian files) and the nearest-neighbour probe
(checked against a direct computation on hand-made vectors)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from elmo_lm.embedding.elmo import Elmo
from elmo_lm.embedding.probe_wsd import (
    first_sense_accuracy,
    nearest_sense_accuracy,
    nearest_sense_predictions,
    probe_wsd,
    representations,
    static_vectors,
    target_layers,
    untrained_like,
)
from elmo_lm.embedding.senses import (
    SenseExample,
    WordNetError,
    open_wordnet,
    parse_lemmas,
    read_sense_examples,
    split_punctuation,
)
from elmo_lm.errors import MissingExtraError
from tests.helpers import one_line_error, require_wordnet


@pytest.fixture(scope="module")
def wordnet():
    return require_wordnet()


def examples_of(senses_by_lemma: dict[str, list[int]]) -> list[SenseExample]:
    return [
        SenseExample(lemma, "n", sense, f"{lemma}.n.{sense:02d}", ("a", lemma), 1)
        for lemma, senses in senses_by_lemma.items()
        for sense in senses
    ]


def direct_predictions(vectors: np.ndarray, examples: list[SenseExample]):
    """The protocol written out query by query, with plain loops."""
    truth, predicted = [], []
    for q, query in enumerate(examples):
        same_lemma = [i for i, e in enumerate(examples) if e.key == query.key]
        if sum(examples[i].sense == query.sense for i in same_lemma) < 2:
            continue  # not a query: its sense has one example
        best, best_senses = -np.inf, []
        for c in same_lemma:
            if c == q:
                continue
            a, b = vectors[q], vectors[c]
            cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))
            if cos > best + 1e-6:
                best, best_senses = cos, [examples[c].sense]
            elif abs(cos - best) <= 1e-6:
                best_senses.append(examples[c].sense)
        truth.append(query.sense)
        predicted.append(min(best_senses))
    return truth, predicted


def test_nearest_neighbour_matches_a_direct_computation():
    examples = examples_of({"bank": [1, 1, 2, 2, 2, 3], "run": [2, 4, 4, 5, 5, 1, 1]})
    rng = np.random.default_rng(0)
    for _ in range(5):
        vectors = rng.normal(size=(len(examples), 6))
        truth, predicted = nearest_sense_predictions(vectors, examples)
        want_truth, want_predicted = direct_predictions(vectors, examples)
        assert truth.tolist() == want_truth
        assert predicted.tolist() == want_predicted
        assert nearest_sense_accuracy(vectors, examples) == pytest.approx(
            np.mean(np.array(want_truth) == np.array(want_predicted))
        )
    # queries: senses with two or more examples (bank: 1, 1, 2, 2, 2; run: 4, 4, 5, 5, 1, 1)
    assert len(truth) == 11


def test_a_clear_nearest_neighbour_wins_and_ties_go_to_the_lower_sense():
    examples = examples_of({"bank": [1, 2, 2, 3, 3]})
    # each sense its own direction: every query's nearest is the other example of its sense
    apart = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0.01], [0, 0, 1], [0, 0.01, 1]], float)
    assert nearest_sense_accuracy(apart, examples) == 1.0
    # identical vectors (a static vector): all tie, sense 1 is predicted for every query
    same = np.ones((5, 3))
    truth, predicted = nearest_sense_predictions(same, examples)
    assert truth.tolist() == [2, 2, 3, 3] and predicted.tolist() == [1, 1, 1, 1]
    assert nearest_sense_accuracy(same, examples) == first_sense_accuracy(examples) == 0.0
    # the first sense-3 query is as near to sense 2 as to sense 3: the lower, 2, is predicted
    tie = np.array([[-1, 0, 0], [0, 1, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]], float)
    assert nearest_sense_predictions(tie, examples)[1].tolist() == [2, 2, 2, 3]


def test_first_sense_is_the_lowest_sense_among_the_candidates():
    # bank: sense 1 has one example, so the queries (2, 2, 3, 3) all see sense 1: wrong;
    # run: queries 2, 2 see [2, 3]: right; 3 is no query (one example)
    examples = examples_of({"bank": [1, 2, 2, 3, 3], "run": [2, 2, 3]})
    assert first_sense_accuracy(examples) == pytest.approx(2 / 6)
    # the static row through the nearest-neighbour code with identical vectors agrees
    assert nearest_sense_accuracy(np.ones((8, 4)), examples) == pytest.approx(2 / 6)


def test_target_layers_are_the_embedders_vectors_at_the_targets(bilm):
    examples = [
        SenseExample("bank", "n", 1, "bank.n.01", ("the", "bank", "was", "closed"), 1),
        SenseExample("bank", "n", 2, "bank.n.02", ("banks",), 0),
        SenseExample("run", "v", 1, "run.v.01", ("we", "ran", "home", "fast", "today", "."), 1),
    ]
    bilm.train()
    layers = target_layers(bilm, examples, batch_size=2)
    assert bilm.training  # put back as it was
    assert layers.shape == (3, bilm.n_representations, bilm.output_dim)
    full = Elmo(bilm).embed_sentences([list(e.tokens) for e in examples], mode="all")
    for row, (e, array) in enumerate(zip(examples, full, strict=True)):
        np.testing.assert_allclose(layers[row], array[:, e.target], atol=1e-5, rtol=0)
    reps = representations(layers)
    assert list(reps) == ["layer_0", "layer_1", "layer_2", "average", "concat"]
    assert reps["concat"].shape == (3, 3 * bilm.output_dim)
    static = static_vectors(bilm, examples)
    np.testing.assert_array_equal(static[0], static[1])  # one vector per lemma
    assert not np.allclose(static[0], static[2])


def test_an_untrained_bilm_has_the_options_and_fresh_weights(bilm):
    fresh = untrained_like(bilm, seed=3)
    assert fresh.options == bilm.options and not fresh.training
    again = untrained_like(bilm, seed=3)
    for a, b in zip(fresh.parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(fresh.parameters(), bilm.parameters()))


def test_the_reader_on_the_debian_files(wordnet):
    wn = open_wordnet()
    data = read_sense_examples(split_punctuation, lemmas=["bank", "see", "bank_account"])
    assert {"bank", "see"} <= {lemma for lemma, _ in data.lemmas}
    for e in data.examples:
        synsets = [lemma.synset() for lemma in wn.lemmas(e.lemma, e.pos)]
        assert synsets[e.sense - 1].name() == e.synset  # the 1-based place among its synsets
        assert e.lemma in {
            e.tokens[e.target].lower(),
            *wn._morphy(e.tokens[e.target].lower(), e.pos),
        }
    assert "saw" in {e.tokens[e.target] for e in data.examples if e.lemma == "see"}
    bank = [e for e in data.examples if e.key == ("bank", "n")]
    assert ("he", "cashed", "a", "check", "at", "the", "bank") in {e.tokens for e in bank}
    assert {e.sense for e in bank if e.tokens[-1] == "bank"} >= {2}  # bank.n.02's example
    counts = data.counts()
    assert counts["lemmas"] == len(data.lemmas) and counts["examples"] == len(data.examples)
    assert counts["skipped_examples"]["target not found"] > 0
    total = sum(len(s.examples()) for n, p in data.lemmas for s in wn.synsets(n, p))
    assert total >= counts["examples"]


def test_every_example_is_kept_or_counted_as_skipped(wordnet):
    wn = open_wordnet()
    given = ["bank", "see", "take_off", "numerate", "break", "line", "qwzx"]
    data = read_sense_examples(split_punctuation, lemmas=given)
    polysemous = [(w, p) for w in given for p in "nv" if len(wn.lemmas(w, p)) >= 2]
    assert data.lemmas_examined == len(polysemous)
    assert sum(data.skipped_lemmas.values()) == len(polysemous) - len(data.lemmas)
    assert data.skipped_lemmas["multiword lemma"] == 1  # take_off
    examples = sum(
        len(lemma.synset().examples()) for key in polysemous for lemma in wn.lemmas(*key)
    )
    assert len(data.examples) + sum(data.skipped.values()) == examples
    sample = read_sense_examples(split_punctuation, max_lemmas=15, seed=1)
    assert len(sample.lemmas) == 15
    assert sum(sample.skipped_lemmas.values()) == sample.lemmas_examined - 15


def test_the_sample_is_the_same_for_the_same_seed(wordnet):
    a = read_sense_examples(split_punctuation, max_lemmas=5, seed=0)
    b = read_sense_examples(split_punctuation, max_lemmas=5, seed=0)
    c = read_sense_examples(split_punctuation, max_lemmas=5, seed=1)
    assert a.lemmas == b.lemmas and a.examples == b.examples and len(a.lemmas) == 5
    assert a.lemmas != c.lemmas


def test_the_probe_on_a_tiny_bilm(wordnet, bilm):
    data = read_sense_examples(split_punctuation, lemmas=["bank", "run", "play"])
    result = probe_wsd(
        bilm, data, untrained_like(bilm, 1), {"ones": np.ones((len(data.examples), 3))}
    )
    assert set(result.accuracy) == {
        *(f"layer_{i}" for i in range(3)),
        "average",
        "concat",
        "first_sense",
        "static",
        "untrained",
        "ones",
    }
    assert result.accuracy["static"] == result.accuracy["first_sense"] == result.accuracy["ones"]
    assert result.queries == data.counts()["queries"] > 10
    assert all(0 <= v <= 1 for v in result.accuracy.values())


def test_lemmas_are_a_comma_list_or_a_file(tmp_path):
    assert parse_lemmas("bank, Run ,ice cream") == ["bank", "run", "ice_cream"]
    (tmp_path / "lemmas.txt").write_text("bank\n\nplay\n")
    assert parse_lemmas(str(tmp_path / "lemmas.txt")) == ["bank", "play"]
    assert parse_lemmas(None) is None


def test_a_lemma_list_that_matches_nothing_is_one_line(wordnet):
    message = one_line_error(
        WordNetError,
        lambda: read_sense_examples(split_punctuation, lemmas=["qwzx", "bank_account"]),
    )
    assert message.startswith("lemmas=qwzx, bank_account: none is a WordNet noun or verb")
    assert "lemmas=bank,run,play" in message


def test_no_wordnet_is_one_line_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("WORDNET_DIR", str(tmp_path))
    message = one_line_error(WordNetError, lambda: read_sense_examples(split_punctuation))
    assert message.startswith(f"{tmp_path}: no WordNet database")
    assert "apt-get install wordnet-base" in message and "WORDNET_DIR" in message


def test_no_nltk_is_one_line_with_the_extra(wordnet, monkeypatch):
    monkeypatch.setitem(sys.modules, "nltk", None)
    message = one_line_error(MissingExtraError, open_wordnet)
    assert (
        message == 'reading WordNet needs nltk, which is not installed; pip install -e ".[probe]"'
    )
