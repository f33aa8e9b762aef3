"""Held-out perplexity of a trained checkpoint: ``python evaluate.py ckpt=PATH.ckpt
data=FILE_OR_GLOB`` prints forward, backward and mean perplexity as JSON (``USAGE``)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

import torch

from elmo_lm.commands.args import REQUIRED, parse_args
from elmo_lm.commands.devices import parse_device
from elmo_lm.data.corpus import OOV_WARNING, Files, count_corpus
from elmo_lm.data.streams import HeldOutStreams, ValidationSentences
from elmo_lm.errors import user_errors
from elmo_lm.training.module import ElmoLM
from elmo_lm.training.perplexity import perplexities

log = logging.getLogger(__name__)

USAGE = "python evaluate.py ckpt=PATH.ckpt data=FILE_OR_GLOB [batch_size=64] [device=auto]"
DEFAULTS = {
    "ckpt": REQUIRED,  # a checkpoint written by train.py
    "data": REQUIRED,  # sentence-per-line text: a path, a glob or [a,b]
    "batch_size": 64,  # streams scored side by side
    "device": "auto",  # auto, cpu, cuda, cuda:N or mps (elmo_lm.commands.devices)
}


def evaluate(
    ckpt: str | os.PathLike,
    data: Files,
    batch_size: int = 64,
    max_sentence_tokens: int = 400,
    device: str = "auto",
    unroll_steps: int = 20,
) -> dict[str, float]:
    """Held-out perplexity of a checkpoint on a sentence-per-line file, with the full softmax.

    ``ppl`` is the original's ``test()`` definition, as in validation: the text read as
    ``batch_size`` streams, the LSTM state carried from one sentence to the next (every token
    scored). ``ppl_zero_state`` scores each sentence on its own from a zero state, as stateless
    embeddings start (sentences longer than ``max_sentence_tokens`` words in pieces).

    Returns:
        ``ppl_fwd``, ``ppl_bwd``, ``ppl`` (exp of the mean of both directions' losses), the same
        three with ``_zero_state``, ``tokens`` (targets per direction: words plus ``</S>``) and
        ``oov_rate``, the share of words outside the vocabulary (scored as ``<UNK>``; a warning
        above ``OOV_WARNING``, as the perplexity then says little).

    Raises:
        ArgumentError: a ``device`` this machine does not have (checked first).
        CheckpointError: ``ckpt`` is missing or cannot be read.
    """
    device = parse_device(device)
    module = ElmoLM.from_checkpoint(ckpt, map_location=device).eval()
    max_chars = module.options.char_cnn.max_characters_per_token
    streams = HeldOutStreams(
        data, module.vocab, batch_size, unroll_steps, max_chars, rank=0, world_size=1
    )
    sentences = ValidationSentences(
        data,
        module.vocab,
        batch_size=batch_size,
        max_characters_per_token=max_chars,
        max_sentence_tokens=max_sentence_tokens,
        rank=0,
        world_size=1,
    )
    carried = torch.zeros(4, dtype=torch.float64, device=device)
    zero = torch.zeros(4, dtype=torch.float64, device=device)
    states: dict = {}
    with torch.inference_mode():
        for batch in streams:
            carried += module.score_stream_batch(_to(batch, device), states)
        for batch in sentences:
            zero += module.score_batch(_to(batch, device))[0]
    zero_ppl = {f"{k}_zero_state": v for k, v in perplexities(zero).items()}
    oov = count_corpus(data, module.vocab, progress=False).oov_rate
    if oov > OOV_WARNING:
        log.warning(
            "%.0f%% of the words of %s are not in the model's vocabulary: they are all scored as "
            "<UNK>, so the perplexity flatters the model",
            100 * oov,
            data,
        )
    return {**perplexities(carried), **zero_ppl, "tokens": float(carried[1]), "oov_rate": oov}


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def main(argv: Sequence[str] | None = None) -> None:
    """``python evaluate.py key=value ...`` (``USAGE``): the perplexities as JSON on stdout."""
    with user_errors():
        args = parse_args(argv, DEFAULTS, USAGE)
        print(json.dumps(evaluate(**args), indent=2))
