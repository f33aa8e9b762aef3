"""Held-out perplexity of a trained checkpoint: ``python evaluate.py ckpt=PATH.ckpt
data=FILE_OR_GLOB`` prints forward, backward and mean perplexity as JSON (``USAGE``).

The held-out text is taken as tokenized (``tokenize=none``); raw text is cut first as
``tokenize=`` says: ``auto``, the tokenizer the checkpoint recorded (its corpus's), or
``moses`` (``elmo_lm.embedding.elmo.choose_tokenizer``)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from elmo_lm.commands.args import REQUIRED, parse_args
from elmo_lm.commands.devices import parse_device
from elmo_lm.data.corpus import (
    OOV_WARNING,
    CorpusError,
    Files,
    corpus_files,
    count_corpus,
    read_sentences,
)
from elmo_lm.data.streams import HeldOutStreams, ValidationSentences
from elmo_lm.data.text import text_lines
from elmo_lm.embedding.elmo import choose_tokenizer, describe_tokenizer, text_tokenizer
from elmo_lm.errors import user_errors
from elmo_lm.formats.atomic import atomic_path, check_output_file
from elmo_lm.formats.tokenize import TokenizerSpec
from elmo_lm.training.module import ElmoLM
from elmo_lm.training.perplexity import perplexities
from elmo_lm.training.scorer import LanguageModel, check_start

log = logging.getLogger(__name__)

USAGE = (
    "python evaluate.py ckpt=PATH.ckpt data=FILE_OR_GLOB [tokenize=none|auto|moses] "
    "[batch_size=64] [device=auto] [per_sentence=OUT.jsonl] [start=zero|warm]"
)
DEFAULTS = {
    "ckpt": REQUIRED,  # a checkpoint written by train.py
    "data": REQUIRED,  # sentence-per-line text: a path, a glob or [a,b]
    "tokenize": "none",  # none: tokenized already; auto: as the checkpoint's corpus; moses
    "batch_size": 64,  # streams scored side by side
    "device": "auto",  # auto, cpu, cuda, cuda:N or mps (elmo_lm.commands.devices)
    "per_sentence": None,  # a .jsonl: each sentence's scores, one JSON line each (scorer.py)
    "start": "zero",  # where per_sentence starts each sentence: zero or warm (BiLM.warm_state)
}


def evaluate(
    ckpt: str | os.PathLike,
    data: Files,
    batch_size: int = 64,
    max_sentence_tokens: int = 400,
    device: str = "auto",
    unroll_steps: int = 20,
    tokenize: str = "none",
    per_sentence: str | os.PathLike | None = None,
    start: str = "zero",
) -> dict[str, float]:
    """Held-out perplexity of a checkpoint on a sentence-per-line file, with the full softmax.

    ``ppl`` is the original's ``test()`` definition, as in validation: the text read as
    ``batch_size`` streams, the LSTM state carried from one sentence to the next (every token
    scored). ``ppl_zero_state`` scores each sentence on its own from a zero state, as stateless
    embeddings start (sentences longer than ``max_sentence_tokens`` words in pieces).
    ``tokenize`` other than ``none`` cuts raw text first: ``auto`` as the checkpoint's corpus
    was cut (its recorded tokenizer; on whitespace, said in the log, where it recorded none),
    ``moses``. ``per_sentence`` writes each sentence's scores (``LanguageModel.score_sentences``
    from ``start``, ``zero`` or ``warm``), one JSON line per sentence in file order; from a zero
    state they sum to ``ppl_zero_state``'s.

    Returns:
        ``ppl_fwd``, ``ppl_bwd``, ``ppl`` (exp of the mean of both directions' losses), the same
        three with ``_zero_state``, ``tokens`` (targets per direction: words plus ``</S>``) and
        ``oov_rate``, the share of words outside the vocabulary (scored as ``<UNK>``; a warning
        above ``OOV_WARNING``, as the perplexity then says little).

    Raises:
        ArgumentError: a ``device`` this machine does not have (checked first).
        CheckpointError: ``ckpt`` is missing or cannot be read.
        ScorerError: a ``start`` other than ``zero`` or ``warm``.
    """
    device = parse_device(device)
    choose_tokenizer(tokenize, None)  # an unknown value before the checkpoint is read
    if per_sentence is not None:
        check_start(start)
        check_output_file(per_sentence, "per_sentence")
    module = ElmoLM.from_checkpoint(ckpt, map_location=device).eval()
    with tokenized(data, tokenize, module.hparams.get("tokenizer")) as text:
        if per_sentence is not None:
            lm = LanguageModel(module, batch_size)
            write_per_sentence(lm, text, per_sentence, start, max_sentence_tokens)
        return _evaluate(module, text, data, batch_size, max_sentence_tokens, device, unroll_steps)


def write_per_sentence(
    lm: LanguageModel,
    data: Files,
    out: str | os.PathLike,
    start: str = "zero",
    max_sentence_tokens: int = 400,
    chunk: int = 4096,
) -> None:
    """Each sentence of the tokenized ``data`` scored by ``lm`` (``SentenceScore.to_dict``), one
    JSON line each, in file order, written to ``out`` as a whole (``atomic_path``); ``chunk``
    sentences are held at a time."""
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        sentences: list[list[str]] = []
        for file in corpus_files(data):
            for tokens in read_sentences(file):
                sentences.append(tokens)
                if len(sentences) == chunk:
                    _write_scores(f, lm, sentences, start, max_sentence_tokens)
                    sentences = []
        if sentences:
            _write_scores(f, lm, sentences, start, max_sentence_tokens)


def _write_scores(f, lm: LanguageModel, sentences, start: str, max_sentence_tokens: int) -> None:
    for score in lm.score_sentences(sentences, start, max_sentence_tokens):
        f.write(json.dumps(score.to_dict()) + "\n")


@contextlib.contextmanager
def tokenized(data: Files, tokenize: str, recorded: dict | None) -> Iterator[Files]:
    """``data`` as it is (``tokenize=none``), else its lines cut into tokens as ``tokenize``
    says (``choose_tokenizer``, for a model that recorded ``recorded``), one sentence a line,
    in a temporary file removed afterwards; says on stderr, in one line, which tokenizer."""
    if tokenize in ("none", "whitespace"):
        yield data
        return
    spec, why = choose_tokenizer(tokenize, TokenizerSpec.from_dict(recorded) if recorded else None)
    print(f"tokenize={tokenize}: {describe_tokenizer(spec)} ({why})", file=sys.stderr)
    cut = text_tokenizer(spec)
    with tempfile.TemporaryDirectory(prefix="elmo-evaluate-") as tmp:
        path = Path(tmp) / "tokenized.txt"
        with open(path, "w", encoding="utf-8") as out:
            for file in corpus_files(data):
                for line in text_lines(file, CorpusError):
                    tokens = cut(line)
                    if tokens:
                        out.write(" ".join(tokens) + "\n")
        yield str(path)


def _evaluate(
    module: ElmoLM,
    data: Files,
    given: Files,
    batch_size: int,
    max_sentence_tokens: int,
    device,
    unroll_steps: int,
) -> dict[str, float]:
    """``evaluate`` on the tokenized text ``data``; ``given`` is the data as the user named it."""
    max_chars = module.options.loader_characters
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
            given,
        )
    return {**perplexities(carried), **zero_ppl, "tokens": float(carried[1]), "oov_rate": oov}


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def main(argv: Sequence[str] | None = None) -> None:
    """``python evaluate.py key=value ...`` (``USAGE``): the perplexities as JSON on stdout."""
    with user_errors():
        args = parse_args(argv, DEFAULTS, USAGE)
        print(json.dumps(evaluate(**args), indent=2))
