"""Under DDP, an accelerator's step averages the softmax's row buffers by one gather of one
packed buffer, started by a hook during the backward; the result is the dense average. A
softmax tied to the word embedding gets one combined gradient: the inputs' rows ride in the
same gather, started once the embedding's gradient exists (after the LSTM's)."""

from __future__ import annotations

import pytest
import torch

VOCAB = ["<S>", "</S>", "<UNK>"] + [f"w{i}" for i in range(60)]


def _on_rank(rank: int, init_file: str, out_dir: str, kind: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    from elmo_lm.cpu import path

    with path.use("accelerator"):
        _step(rank, out_dir, kind)
    torch.distributed.destroy_process_group()


def _step(rank: int, out_dir: str, kind: str) -> None:
    from elmo_lm.training import gradients
    from elmo_lm.training.module import ElmoLM
    from tests.helpers import tiny_options_with

    options = tiny_options_with(n_negative_samples_batch=16)
    options.n_tokens_vocab = len(VOCAB)
    if kind == "tied":
        options.char_cnn, options.share_embedding_softmax = None, True
    torch.manual_seed(0)  # the same weights on both ranks
    module = ElmoLM(options.to_dict(), VOCAB).train()
    module._log_step = False
    g = torch.Generator().manual_seed(rank)  # each rank its own batch and negatives
    batch = {
        "fwd_chars": torch.randint(1, 200, (3, 5, 50), generator=g),
        "bwd_chars": torch.randint(1, 200, (3, 5, 50), generator=g),
        "fwd_targets": torch.randint(0, len(VOCAB), (3, 5), generator=g),
        "bwd_targets": torch.randint(0, len(VOCAB), (3, 5), generator=g),
        "fwd_ids": torch.randint(0, len(VOCAB), (3, 5), generator=g),
        "bwd_ids": torch.randint(0, len(VOCAB), (3, 5), generator=g),
        "stream_id": 0,
        "reset": True,
    }
    order = []  # which gradient came first: the gather's start or the LSTM's weights
    gathers = []
    real_start = gradients.PackedRowGather.start

    def start(self, *args):
        order.append("gather")
        gathers.append(self)
        return real_start(self, *args)

    gradients.PackedRowGather.start = start
    module.bilm.lstm.weights[0].register_post_accumulate_grad_hook(lambda p: order.append("lstm"))
    torch.manual_seed(rank)
    module.training_step(batch, 0).backward()
    ids, rows = module.softmax.row_gradient()
    p = module.softmax.weight.shape[1]
    mine = torch.zeros(len(VOCAB), p + 1).index_add_(0, ids, rows)  # this rank's, dense
    module.on_after_backward()
    averaged = torch.cat(
        [module.softmax.weight.grad.to_dense(), module.softmax.bias.grad.to_dense()], 1
    )
    torch.save({"mine": mine, "averaged": averaged, "order": order}, f"{out_dir}/{rank}.pt")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["char", "tied"])
def test_the_row_buffers_are_gathered_once_during_the_backward(tmp_path, kind):
    torch.multiprocessing.spawn(
        _on_rank, args=(str(tmp_path / "init"), str(tmp_path), kind), nprocs=2, join=True
    )
    got = [torch.load(tmp_path / f"{rank}.pt") for rank in (0, 1)]
    expected = (got[0]["mine"] + got[1]["mine"]) / 2
    assert expected.abs().sum() > 0
    for rank in (0, 1):
        torch.testing.assert_close(got[rank]["averaged"], expected, atol=1e-6, rtol=1e-5)
        # one gather, started before the backward reached the LSTM's first layer; tied, once
        # the inputs' rows have theirs too (they are the step's first layer)
        assert got[rank]["order"] == (["lstm", "gather"] if kind == "tied" else ["gather", "lstm"])
