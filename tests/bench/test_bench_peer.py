"""bench/bench_peer.py's held-out scoring of our checkpoints, as the original's ``test()`` scores
its own: from a zero state, and warm (from the state training ended in, as the original's
driver's warm test), and its table of both."""

from __future__ import annotations

import pytest
import torch

from elmo_lm.training.module import TRAIN_STATES_KEY
from elmo_lm.training.run import train
from tests.helpers import load_script

peer = load_script("bench/bench_peer.py")


@pytest.fixture
def ckpt(train_config, tmp_path):
    train(train_config(tmp_path, "trainer.max_steps=3", "module.n_negative_samples=8", name="a"))
    return tmp_path / "runs" / "a" / "checkpoints" / "last.ckpt"


def test_warm_scoring_starts_each_row_from_the_state_training_ended_in(ckpt, tmp_path):
    valid = tmp_path / "valid.txt"
    cold = peer.original_test_ppl(ckpt, valid, batch_size=4, unroll_steps=5)
    warm = peer.original_test_ppl(ckpt, valid, batch_size=4, unroll_steps=5, warm=True)
    assert warm["scored"] == cold["scored"] > 0
    assert warm["ppl"] != pytest.approx(cold["ppl"], rel=1e-6)  # another start, other scores
    h, c = peer.final_training_state(ckpt)
    assert h.shape[2] == 8  # the training batch's rows; the 4 held-out rows take rows 0-3

    saved = torch.load(ckpt, weights_only=False)
    streams = saved[TRAIN_STATES_KEY]["ranks"][0]
    streams.update({k: tuple(torch.zeros_like(t) for t in v) for k, v in streams.items()})
    zeroed = tmp_path / "zeroed.ckpt"
    torch.save(saved, zeroed)
    from_zeros = peer.original_test_ppl(zeroed, valid, batch_size=4, unroll_steps=5, warm=True)
    assert from_zeros["ppl"] == pytest.approx(cold["ppl"], rel=1e-6)


def test_the_table_compares_the_warm_perplexities_too():
    def run(ppl, warm):
        r = {"ppl": ppl, "ppl_fwd": ppl, "ppl_bwd": ppl, "tokens_per_s": 100.0, "steps": 600}
        return {**r, "warm_ppl": warm, "warm_ppl_fwd": warm, "warm_ppl_bwd": warm}

    results = {
        "original": {1: run(1e9, 300.0), 2: run(320.0, 310.0)},
        "ours": {1: run(330.0, 303.0), 2: run(5e8, 306.0)},
    }
    text = peer.report(results, warmup=100)
    ratios = {line.split("|")[0].strip(): line for line in text.splitlines()}
    assert "warm ppl" in ratios and "yes, yes, yes" in ratios["warm ppl"]
    assert "no, no, no" in ratios["ppl"]
    assert peer.original_warm({"warm": {"test_ppl": 1.0, "test_ppl_forward": 2.0}}) == {
        "ppl": 1.0,
        "ppl_fwd": 2.0,
    }
