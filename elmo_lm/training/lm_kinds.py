"""What a training run builds beside the biLM for each kind of LM the original trainer trains:
the softmax (sampled or full, its own weights or tied to a word embedding), and which
parameters DDP leaves to ``elmo_lm.training.gradients`` (those with sparse row gradients).

``module.softmax`` and the options' ``sample_softmax`` say one thing: ``auto`` samples when the
options allow it (``sample_softmax``, the original's default true) and the vocabulary has more
classes than negatives; ``sampled`` needs both; ``full`` or ``sample_softmax: false`` trains
with the full softmax. The run records what it chose in its options (``sample_softmax``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch

from elmo_lm.errors import TrainingError
from elmo_lm.formats.options import BiLMOptions
from elmo_lm.formats.softmax_file import rows_by_token
from elmo_lm.model.bilm import BiLM
from elmo_lm.model.softmax import Softmax

log = logging.getLogger(__name__)

SOFTMAX_MODES = ("auto", "sampled", "full")


def resolve_softmax(
    mode: str, vocab_size: int, n_negative_samples: int, sample_softmax: bool = True
) -> bool:
    """Whether to train with the sampled softmax: ``auto`` samples only when the vocabulary has
    more classes than negatives and the options' ``sample_softmax`` allows it (logged when it
    falls back to the full softmax).

    Raises:
        ValueError: an unknown mode, or ``sampled`` where it cannot sample.
    """
    if mode not in SOFTMAX_MODES:
        raise ValueError(f"module.softmax={mode!r}: use one of {', '.join(SOFTMAX_MODES)}")
    if mode == "full":
        return False
    if not sample_softmax:
        if mode == "sampled":
            raise ValueError(
                "module.softmax=sampled, but the model's options say sample_softmax: false; "
                "use module.softmax=auto (or full), or drop sample_softmax from the model config"
            )
        return False
    if vocab_size > n_negative_samples:
        return True
    if mode == "sampled":
        raise ValueError(
            f"module.softmax=sampled needs a vocabulary larger than n_negative_samples="
            f"{n_negative_samples} (it has {vocab_size} tokens); lower module.n_negative_samples "
            "or use module.softmax=auto"
        )
    log.info(
        "vocabulary of %d tokens is not larger than n_negative_samples=%d: training with the "
        "full softmax (train/ppl is then a real perplexity)",
        vocab_size,
        n_negative_samples,
    )
    return False


def build_softmax(options: BiLMOptions, bilm: BiLM, vocab_size: int, sampled: bool) -> Softmax:
    """The softmax of ``bilm``: shared by both directions, as the original ("shared if
    bidirectional"); tied to the word embedding with ``share_embedding_softmax`` (one matrix,
    whose lookups for the inputs go through the softmax: ``Softmax.input_rows``)."""
    tied = bilm.word_embedding.weight if options.share_embedding_softmax else None
    softmax = Softmax(
        vocab_size,
        options.lstm.projection_dim,
        options.n_negative_samples_batch,
        sampled,
        weight=tied,
        n_directions=options.n_directions,
    )
    if tied is not None:
        bilm.word_embedding.rows = softmax.input_rows
    return softmax


def load_for_fine_tuning(bilm: BiLM, source: BiLM, weight_file: object) -> int | None:
    """Loads ``source``'s weights (``init_from``) into ``bilm``, a biLM of the same options but
    for the new run's vocabulary. A word-input LM's embedding is a row per token: each token of
    ``bilm``'s vocabulary that ``source``'s holds starts from its row, the others keep their
    initial ones (as the softmax's rows: ``copy_rows_by_token``). Returns how many embedding rows
    start warm; None for character inputs, which have no vocabulary of their own.

    Raises:
        TrainingError: the biLMs differ beyond the embedding's rows, or ``source`` was read
            without its vocabulary (``weight_file`` names it in the message).
    """
    state = source.state_dict()
    if source.word_embedding is None:
        bilm.load_state_dict(state)
        return None
    rows = state.pop("word_embedding.weight")  # (V', P)
    missing, unexpected = bilm.load_state_dict(state, strict=False)
    if unexpected or missing != ["word_embedding.weight"]:
        differ = ", ".join(unexpected + missing)
        raise TrainingError(
            f"init_from={weight_file}: its biLM differs from its options ({differ})"
        )
    target, tokens = bilm.word_embedding, source.word_embedding.tokens
    if tokens is None or target.tokens is None:
        raise TrainingError(
            f"init_from={weight_file}: a word-input LM's embedding rows are tokens; put its "
            "vocab.txt (written by export.py) beside it"
        )
    matched = rows_by_token(target.tokens, tokens)
    if matched is None:
        return 0
    to, frm = matched
    with torch.no_grad():
        target.weight[to] = rows[frm].to(target.weight)
    return len(to)


def separate_parameter_names(module) -> list[str]:
    """The parameters DDP's reducer leaves alone (``_ddp_params_and_buffers_to_ignore``): the
    softmax's and a word embedding's, whose gradients may be sparse; ``all_reduce_mean_grads``
    (or the accelerator's packed row gather) averages them."""
    return [
        n
        for n, _ in module.named_parameters()
        if n.startswith("softmax.") or n.startswith("bilm.word_embedding.")
    ]


def as_dicts_and_lists(value):
    """Nested mappings and sequences (e.g. from a config) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): as_dicts_and_lists(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [as_dicts_and_lists(v) for v in value]
    return value


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested dict's leaves under ``/``-joined keys (lists as text), for TensorBoard."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = str(v) if isinstance(v, list | tuple) else v
    return out
