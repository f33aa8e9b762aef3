"""The LM as a scorer (``elmo_lm.training.scorer``): per-sentence log-probabilities that add up
to ``evaluate``'s zero-state perplexity, and substitutes at a position from the full softmax."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from elmo_lm.commands.evaluate import evaluate
from elmo_lm.formats.checkpoint import CheckpointError
from elmo_lm.training.scorer import LanguageModel, ScorerError
from tests.helpers import SCORER_VOCAB as VOCAB
from tests.helpers import WORDS, write_tiny_checkpoint

SENTENCES = [
    "w1 w2 w3",
    "w4",
    "w5 w6 w7 w8 w9 w0 w1",
    "w2 oov w3 w3",  # oov is scored as <UNK>
    "w9 w8 w7 w6 w5",
]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("scorer") / "tiny.ckpt")


@pytest.fixture(scope="module")
def lm(ckpt) -> LanguageModel:
    return LanguageModel.from_checkpoint(ckpt, batch_size=2)


def _sums(scores) -> tuple[float, float, int]:
    return (
        -sum(s.logprob_fwd for s in scores),
        -sum(s.logprob_bwd for s in scores),
        sum(s.targets for s in scores),
    )


@pytest.mark.parametrize("max_sentence_tokens", [400, 3])
def test_zero_state_scores_sum_to_evaluates_zero_state_perplexity(
    ckpt, lm, tmp_path, max_sentence_tokens
):
    data = tmp_path / "held_out.txt"
    data.write_text("\n".join(SENTENCES) + "\n\n")  # a blank line is no sentence
    out = tmp_path / "scores.jsonl"
    result = evaluate(
        ckpt,
        str(data),
        batch_size=3,
        max_sentence_tokens=max_sentence_tokens,
        device="cpu",
        per_sentence=str(out),
    )
    scores = lm.score_sentences(
        [s.split() for s in SENTENCES], start="zero", max_sentence_tokens=max_sentence_tokens
    )
    nll_fwd, nll_bwd, n = _sums(scores)
    if max_sentence_tokens == 400:  # whole sentences: words and </S> of each
        assert n == sum(len(s.split()) + 1 for s in SENTENCES) == result["tokens"]
    else:  # pieces, each with its end: as ValidationSentences cuts them
        assert n == sum(-(-len(s.split()) // 3) + len(s.split()) for s in SENTENCES)
    assert math.exp(nll_fwd / n) == pytest.approx(result["ppl_fwd_zero_state"], rel=1e-6)
    assert math.exp(nll_bwd / n) == pytest.approx(result["ppl_bwd_zero_state"], rel=1e-6)
    ppl = math.exp(0.5 * (nll_fwd + nll_bwd) / n)
    assert ppl == pytest.approx(result["ppl_zero_state"], rel=1e-6)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["tokens"] for line in lines] == [s.split() for s in SENTENCES]
    for line, score in zip(lines, scores):
        assert line["logprob"] == pytest.approx(score.logprob, rel=1e-6)
        assert line["ppl"] == pytest.approx(math.exp(-score.logprob / score.targets))


@pytest.mark.parametrize("start", ["zero", "warm"])
def test_a_sentence_scores_the_same_alone_or_in_a_batch(ckpt, start):
    sentences = [s.split() for s in SENTENCES]
    together = LanguageModel.from_checkpoint(ckpt, batch_size=8).score_sentences(sentences, start)
    alone = LanguageModel.from_checkpoint(ckpt, batch_size=1).score_sentences(sentences, start)
    for a, b in zip(together, alone):
        assert a.tokens == b.tokens and a.targets == b.targets
        assert a.logprob_fwd == pytest.approx(b.logprob_fwd, rel=1e-5)
        assert a.logprob_bwd == pytest.approx(b.logprob_bwd, rel=1e-5)
        assert a.logprob == pytest.approx(0.5 * (a.logprob_fwd + a.logprob_bwd))


def test_the_warm_start_changes_the_scores(lm):
    zero, warm = (lm.score_sentences([["w1", "w2"]], start)[0] for start in ("zero", "warm"))
    assert zero.logprob != pytest.approx(warm.logprob, rel=1e-4)


def test_substitutes_are_the_full_softmax_without_specials(lm):
    sentence = "w1 w2 w3 w4 w5".split()
    k = len(VOCAB) - 3
    (sub,) = lm.substitutes([sentence], [2], k=k + 5)  # k is capped at the non-special words
    assert sub.word == "w3" and sub.position == 2
    for pairs in (sub.forward, sub.backward, sub.both):
        words = [w for w, _ in pairs]
        assert sorted(words) == sorted(WORDS)  # every word once, no <S>, </S>, <UNK>
        values = [v for _, v in pairs]
        assert values == sorted(values, reverse=True)
        assert sum(math.exp(v) for v in values) <= 1 + 1e-5
    f, b, both = (dict(pairs) for pairs in (sub.forward, sub.backward, sub.both))
    # log-softmax of the sum: both[w] - (f[w] + b[w]) is one constant
    shifts = [both[w] - (f[w] + b[w]) for w in WORDS]
    assert max(shifts) - min(shifts) < 1e-4


def test_the_forward_substitutes_depend_on_the_left_context_only(lm):
    # Same left context "w1 w2", different right context: the forward lists are equal.
    a, b = lm.substitutes([["w1", "w2", "w3", "w4"], ["w1", "w2", "w3", "w9", "w9"]], [2, 2], k=3)
    assert [w for w, _ in a.forward] == [w for w, _ in b.forward]
    assert [v for _, v in a.forward] == pytest.approx([v for _, v in b.forward], abs=1e-5)
    # Same right context "w7 w8": the backward lists are equal.
    c, d = lm.substitutes([["w1", "w5", "w7", "w8"], ["w0", "w6", "w7", "w8"]], [1, 1], k=3)
    assert [v for _, v in c.backward] == pytest.approx([v for _, v in d.backward], abs=1e-5)


def test_substitutes_are_batched_alike(ckpt):
    queries = [s.split() for s in SENTENCES]
    positions = [len(s) // 2 for s in queries]
    one = LanguageModel.from_checkpoint(ckpt, batch_size=1).substitutes(queries, positions, k=3)
    many = LanguageModel.from_checkpoint(ckpt, batch_size=8).substitutes(queries, positions, k=3)
    for a, b in zip(one, many):
        assert a.tokens == b.tokens and a.position == b.position
        assert [v for _, v in a.both] == pytest.approx([v for _, v in b.both], abs=1e-5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda lm: lm.substitutes([["w1", "w2"]], [2]), "position=2 is outside sentence 1"),
        (lambda lm: lm.substitutes([["w1", "w2"]], [-1]), "position=-1 is outside sentence 1"),
        (lambda lm: lm.score_sentences([["w1"], []]), "sentence 2 is empty"),
        (lambda lm: lm.substitutes([[]], [0]), "sentence 1 is empty"),
        (lambda lm: lm.score_sentences([["w1"]], start="cold"), "start='cold': use one of"),
    ],
)
def test_bad_input_is_one_line(lm, call, message):
    with pytest.raises(ScorerError, match=message) as exc:
        call(lm)
    assert "\n" not in str(exc.value)


def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="cannot be read as a checkpoint") as exc:
        LanguageModel.from_checkpoint(bad)
    assert "\n" not in str(exc.value)
