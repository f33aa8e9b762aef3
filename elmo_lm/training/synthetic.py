"""Synthetic training steps to measure: the published original ELMo's shape with a Zipf batch
of made-up words (``original_shape_step``), on ``meta`` or any device."""

from __future__ import annotations

import os

import torch

from elmo_lm.cpu import path
from elmo_lm.data.packing import distinct_tokens
from elmo_lm.formats.characters import MAX_CHARACTERS_PER_TOKEN, token_to_char_ids
from elmo_lm.training.audit import TrainStep
from elmo_lm.training.module import ElmoLM

_HERE = os.path.dirname(os.path.abspath(__file__))


_HEX_TO_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def synthetic_word(i: int) -> str:
    """A distinct word per id, 1-16 characters: the id in hexadecimal spelt with the letters
    a-p, then 0-9 letters of q-z."""
    return format(i, "x").translate(_HEX_TO_LETTERS) + "qrstuvwxyz"[: i * 7 % 10]


def synthetic_vocab(size: int) -> list[str]:
    """``<S>``, ``</S>``, ``<UNK>``, then ``synthetic_word``s: ``size`` tokens."""
    return ["<S>", "</S>", "<UNK>"] + [synthetic_word(i) for i in range(size - 3)]


def zipf_batch(
    vocab: list[str],
    batch_size: int,
    unroll_steps: int,
    seed: int = 0,
    max_chars: int = MAX_CHARACTERS_PER_TOKEN,
    chars: bool = True,
) -> dict:
    """A CPU training batch of Zipf-distributed tokens (rank r drawn with weight 1 / (r + 1),
    specials apart) in ``ElmoDataModule``'s keys: the forward LM predicts each row's next token,
    the backward LM the previous one. ``chars`` False: a word-input LM's batch, ids without
    char ids or distinct tokens (what the loader gives it)."""
    g = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, len(vocab) - 2, dtype=torch.float64)
    ids = torch.multinomial(weights, batch_size * (unroll_steps + 1), True, generator=g) + 3
    ids = ids.view(batch_size, unroll_steps + 1)  # (B, T + 1)
    batch = {
        "fwd_targets": ids[:, 1:].contiguous(),
        "bwd_targets": ids[:, :-1].flip(1).contiguous(),
        "fwd_ids": ids[:, :-1].contiguous(),  # the inputs' word ids (a word-input LM's)
        "bwd_ids": ids[:, 1:].flip(1).contiguous(),
    }
    if not chars:
        return batch
    distinct, inverse = ids.unique(return_inverse=True)
    table = torch.tensor([token_to_char_ids(vocab[i], max_chars) for i in distinct.tolist()])
    char_ids = table[inverse]  # (B, T + 1, max_chars)
    rows = torch.stack([inverse[:, :-1], inverse[:, 1:].flip(1)])  # (2, B, T) rows of table
    return {
        "fwd_chars": char_ids[:, :-1].contiguous(),
        "bwd_chars": char_ids[:, 1:].flip(1).contiguous(),
        **batch,
        **distinct_tokens(rows, table),  # what the data loader adds: elmo_lm.data.packing
    }


def original_shape_step(
    vocab_size: int = 800_000,
    batch_size: int = 128,
    unroll_steps: int = 20,
    n_negative_samples: int = 8192,
    device: str | torch.device = "meta",
    path_name: str = "accelerator",
    seed: int = 0,
    vocab: list[str] | None = None,
) -> TrainStep:
    """The published original ELMo's training step (``conf/model/original.yaml``, 800k-token
    vocabulary, 8192 negatives, batch 128 x 20) with a synthetic Zipf batch, module and batch on
    ``device`` (``meta``: shapes only, nothing allocated), run on path ``path_name``.

    ``vocab`` (``synthetic_vocab(vocab_size)`` when None) may be passed to build several steps
    without remaking the strings.
    """
    from omegaconf import OmegaConf

    from elmo_lm.training.config import model_options

    vocab = synthetic_vocab(vocab_size) if vocab is None else vocab
    conf = os.path.join(os.path.dirname(os.path.dirname(_HERE)), "conf/model/original.yaml")
    options = model_options(OmegaConf.load(conf))
    options.n_negative_samples_batch, options.unroll_steps = n_negative_samples, unroll_steps
    options.n_tokens_vocab = len(vocab)
    torch.manual_seed(seed)
    with path.use(path_name):
        try:
            with torch.device(device):  # on meta: no memory, no time drawing the weights
                module = ElmoLM(options.to_dict(), vocab)
        except (RuntimeError, NotImplementedError):  # the constructor reads values: on the CPU
            module = ElmoLM(options.to_dict(), vocab)
        module = module.to(device).train()
        optimizer = module.configure_optimizers()
    batch = {k: v.to(device) for k, v in zipf_batch(vocab, batch_size, unroll_steps, seed).items()}
    return TrainStep(module, optimizer, batch, path_name)
