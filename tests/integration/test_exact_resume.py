"""A run killed mid-epoch and resumed from its checkpoint ends exactly as the uninterrupted run:
the checkpoint carries the training streams' LSTM states, the first window after the resume
goes on from them, and every step draws what it would have drawn."""

import json

import pytest
import torch

from elmo_lm.training.module import TRAIN_STATES_KEY
from tests.integration.test_resume import kill_at_7, run_recorded


def _final(run):
    """The last checkpoint's weights and the held-out perplexity of the run in ``run``."""
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return last["state_dict"], json.loads((run / "metrics.json").read_text())["val/ppl"]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_run_ends_exactly_as_the_uninterrupted_one(train_config, tmp_path, workers):
    # Exactly, not approximately: on CPU the same ops on the same values in the same order give
    # the same bits, so any difference is a state or a random draw that the resume lost.
    loader = f"data.num_workers={workers}"
    run_recorded(train_config, tmp_path, "whole", loader)
    run = kill_at_7(train_config, tmp_path, loader)
    (saved,) = run.glob("checkpoints/latest-step7.ckpt")
    states = torch.load(saved, weights_only=True)[TRAIN_STATES_KEY]
    assert states["world_size"] == 1
    assert sorted(states["ranks"][0]) == list(range(max(1, workers)))  # one per worker stream
    run_recorded(train_config, tmp_path, "resumed", loader, f"ckpt_path={run}")

    weights, ppl = _final(tmp_path / "runs" / "resumed")
    whole_weights, whole_ppl = _final(tmp_path / "runs" / "whole")
    assert ppl == whole_ppl
    assert weights.keys() == whole_weights.keys()
    for name, value in weights.items():
        assert torch.equal(value, whole_weights[name]), name


def test_a_checkpoint_without_the_states_resumes_from_zero_states(train_config, tmp_path):
    """As checkpoints saved before the states were: the run goes on, from zero states."""
    run_recorded(train_config, tmp_path, "whole")
    run = kill_at_7(train_config, tmp_path)
    path = run / "checkpoints" / "latest-step7.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint[TRAIN_STATES_KEY]
    torch.save(checkpoint, path)
    run_recorded(train_config, tmp_path, "resumed", f"ckpt_path={run}")

    weights, ppl = _final(tmp_path / "runs" / "resumed")
    whole_weights, whole_ppl = _final(tmp_path / "runs" / "whole")
    assert ppl == pytest.approx(whole_ppl, rel=0.05) and ppl != whole_ppl
    assert not all(torch.equal(v, whole_weights[k]) for k, v in weights.items())
