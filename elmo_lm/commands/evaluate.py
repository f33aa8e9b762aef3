"""Held-out perplexity of a trained checkpoint (``evaluate.py``)."""

from __future__ import annotations

import logging
import os

import torch

from elmo_lm.data.streams import HeldOutStreams, ValidationSentences
from elmo_lm.data.vocabulary import Files, corpus_files, iter_sentences
from elmo_lm.training.module import ElmoLM
from elmo_lm.training.perplexity import perplexities

log = logging.getLogger(__name__)


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
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
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
    oov = oov_rate(module.vocab, data)
    if oov > OOV_WARNING:
        log.warning(
            "%.0f%% of the words of %s are not in the model's vocabulary: they are all scored as "
            "<UNK>, so the perplexity flatters the model",
            100 * oov,
            data,
        )
    return {**perplexities(carried), **zero_ppl, "tokens": float(carried[1]), "oov_rate": oov}


OOV_WARNING = 0.1
"""``evaluate`` warns when more than this share of the words is out of the vocabulary."""


def oov_rate(vocab, data: Files) -> float:
    """The share of the words of ``data`` that ``vocab`` does not hold."""
    n = unknown = 0
    for tokens in iter_sentences(corpus_files(data)):
        n += len(tokens)
        unknown += sum(t not in vocab for t in tokens)
    return unknown / max(n, 1)


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
