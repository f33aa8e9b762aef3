"""Shared pieces of the benchmarks: the published shapes, FLOP counts, the matmul peak, texts."""

from __future__ import annotations

import random
import string
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from elmo_lm.console import format_table as table  # noqa: F401  (the benchmarks print with it
from elmo_lm.formats.options import BiLMOptions
from elmo_lm.training.config import model_options


def small_options() -> BiLMOptions:
    """The published "small" ELMo of conf/model/small.yaml: 2 x 1024 cells, projection 128,
    2048 filters, 1 highway."""
    return model_options(
        OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/model/small.yaml")
    )


def token_encoder_flops(options: BiLMOptions) -> int:
    """Multiply-adds x 2 of the char CNN (all positions), highway layers and projection, per token."""
    cnn, d = options.char_cnn, options.char_cnn.embedding.dim
    f = options.n_filters
    conv = sum((cnn.max_characters_per_token - w + 1) * w * d * n * 2 for w, n in cnn.filters)
    highway = cnn.n_highway * f * 2 * f * 2
    return conv + highway + f * options.lstm.projection_dim * 2


def lstm_flops(options: BiLMOptions) -> int:
    """Matmul FLOPs of both directions' LSTMs, per token position."""
    h, p = options.lstm.dim, options.lstm.projection_dim
    return 2 * options.lstm.n_layers * (2 * p * 4 * h + h * p) * 2


def matmul_peak(seconds: float = 3.0, n: int = 2048) -> float:
    """The machine's measured float32 matmul rate in FLOP/s: the best of repeated n x n
    products through torch's BLAS (``torch.mm``) and through oneDNN (``elmo_lm.cpu.matmul.mm``, the
    library our large products use where it is faster: on AMD processors MKL runs its AVX2 code,
    oneDNN AVX-512, twice the rate)."""
    from elmo_lm.cpu import matmul

    a, b = torch.randn(n, n), torch.randn(n, n)
    best = 0.0
    for product in (torch.mm, matmul.mm):
        for _ in range(3):
            product(a, b)
        end = time.perf_counter() + seconds / 2
        while time.perf_counter() < end:
            t = time.perf_counter()
            product(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def zipf_words(n_types: int = 100_000, seed: int = 0) -> tuple[list[str], list[float]]:
    """A synthetic vocabulary with English-like word lengths and Zipfian frequencies."""
    rng = random.Random(seed)
    words, seen = [], set()
    while len(words) < n_types:
        w = "".join(rng.choices(string.ascii_lowercase, k=max(1, min(18, int(rng.gauss(7, 3))))))
        if w not in seen:
            seen.add(w)
            words.append(w)
    weights = [1.0 / (r + 1) for r in range(n_types)]
    return words, weights


def ordinary_sentences(n: int, min_len: int, max_len: int, seed: int = 0) -> list[list[str]]:
    """Sentences of Zipf-distributed words (natural text's repetition of frequent words)."""
    words, weights = zipf_words(seed=seed)
    rng = random.Random(seed)
    return [rng.choices(words, weights, k=rng.randint(min_len, max_len)) for _ in range(n)]


def distinct_sentences(n: int, min_len: int, max_len: int, seed: int = 0) -> list[list[str]]:
    """Sentences in which every token is different (no two tokens share their characters)."""
    words, _ = zipf_words(n_types=n * max_len + 1000, seed=seed + 1)
    rng = random.Random(seed)
    it = iter(words)
    return [[next(it) for _ in range(rng.randint(min_len, max_len))] for _ in range(n)]
