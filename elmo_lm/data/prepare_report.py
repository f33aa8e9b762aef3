"""What ``elmo-prepare`` says about a corpus it wrote: sizes, the OOV rate of valid by
vocabulary size, the tokens the character ids would crop, a model and vocabulary to start
from, and steps per epoch (stored as ``report`` in ``corpus.json``)."""

from __future__ import annotations

import math
from collections import Counter

from elmo_lm.formats.characters import MAX_CHARACTERS_PER_TOKEN

VOCAB_SIZES = (10_000, 50_000, 100_000, 800_000)  # and "all"; each with the 3 specials
KEEP_WHOLE = 0.999  # the share of tokens a suggested max_characters_per_token keeps uncropped
MIN_COUNT = 3  # the suggested vocabulary: tokens seen this often (the original's 1B vocabulary)
MAX_VOCAB = 800_000  # ... at most the published size
# conf/model/ by training tokens: (below this many, model)
MODEL_BY_TOKENS = (
    (100_000, "tiny"),
    (5_000_000, "mini"),
    (50_000_000, "small"),
    (500_000_000, "medium"),
    (math.inf, "original"),
)


def suggested_model(n_train_tokens: int) -> str:
    """The ``conf/model/`` to start from: tiny < 100k tokens <= mini < 5M <= small < 50M <=
    medium < 500M <= original (the published model, trained on the 1B Word Benchmark's 800M)."""
    return next(name for bound, name in MODEL_BY_TOKENS if n_train_tokens < bound)


def crop_figures(counts: Counter, max_chars: int = MAX_CHARACTERS_PER_TOKEN) -> dict:
    """The share of tokens (weighted by count) whose UTF-8 bytes pass ``max_chars - 2`` (the
    char ids hold ``<bow>`` and ``<eow>``: ``formats.characters.token_to_char_ids`` crops the
    rest), and the ``max_characters_per_token`` that keeps ``KEEP_WHOLE`` of them whole."""
    by_length: Counter = Counter()
    for token, c in counts.items():
        by_length[len(token.encode("utf-8"))] += c
    total = sum(by_length.values())
    cropped = sum(c for n, c in by_length.items() if n > max_chars - 2)
    seen, keep = 0, 0
    for n in sorted(by_length):
        seen += by_length[n]
        keep = n
        if seen >= KEEP_WHOLE * total:
            break
    return {
        "max_characters_per_token": max_chars,
        "cropped_share": cropped / total if total else 0.0,
        "cropped_tokens": cropped,
        "max_characters_keeping_99.9%": keep + 2,
    }


def oov_rates(valid: Counter, ranked: list[str]) -> dict:
    """The share of valid's tokens outside the vocabulary of the ``size - 3`` most frequent
    train tokens (plus the specials), for ``VOCAB_SIZES`` up to the vocabulary, and ``all``."""
    total = sum(valid.values())
    rank = {t: i for i, t in enumerate(ranked)}
    missing = sum(c for t, c in valid.items() if t not in rank)
    rates = {}
    for size in VOCAB_SIZES:
        if size - 3 >= len(ranked):
            break
        outside = sum(c for t, c in valid.items() if rank.get(t, size) >= size - 3)
        rates[str(size)] = outside / total if total else 0.0
    rates[f"all ({len(ranked) + 3})"] = missing / total if total else 0.0
    return rates


def corpus_report(read: dict, kept_dups, sentences: dict, counts: dict, ranked: list) -> dict:
    """The report of a prepared corpus (see the module docstring)."""
    train = counts["train"]
    n_tokens = {split: sum(c.values()) for split, c in counts.items()}
    vocab_size = min(MAX_VOCAB, 3 + sum(1 for t in ranked if train[t] >= MIN_COUNT))
    every = Counter()
    for c in counts.values():
        every.update(c)
    return {
        "sentences": {
            "read": read["sentences"],
            "dropped_length": read["dropped_length"],
            "duplicates": sum(d for _, d in kept_dups),
            "kept": sum(k for k, _ in kept_dups),
            **sentences,
        },
        "tokens": n_tokens,
        "types": len(train),
        "attached_punctuation": read["attached"],
        "oov_valid": oov_rates(counts["valid"], ranked) if n_tokens["valid"] else {},
        "crop": crop_figures(every),
        "suggested": {
            "model": suggested_model(n_tokens["train"]),
            "vocab_size": vocab_size,
            "vocab_rule": f"train tokens seen >= {MIN_COUNT} times, at most {MAX_VOCAB}",
        },
    }


def steps_per_epoch(report: dict, batch_size: int, unroll_steps: int, world_size: int) -> int:
    """Training steps of one epoch: the packed stream (each sentence adds ``<S>`` and
    ``</S>``) over ``batch_size`` x ``unroll_steps`` tokens on each of ``world_size`` devices."""
    n = report["tokens"]["train"] + 2 * report["sentences"]["train"]
    return max(1, math.ceil(n / (batch_size * unroll_steps * world_size)))


def report_rows(report: dict) -> list[dict]:
    """The report as rows of (what, value) for ``console.format_table``."""
    s, crop, sug = report["sentences"], report["crop"], report["suggested"]
    rows = [
        ("sentences read", s["read"]),
        ("dropped (length)", s["dropped_length"]),
        ("duplicates dropped", s["duplicates"]),
        ("kept: train / valid / test", f"{s['train']} / {s['valid']} / {s['test']}"),
        ("tokens: train / valid / test", " / ".join(str(v) for v in report["tokens"].values())),
        ("types (train)", report["types"]),
        ("attached punctuation", f"{report['attached_punctuation']:.2%}"),
    ]
    rows += [(f"valid OOV at vocab {k}", f"{v:.2%}") for k, v in report["oov_valid"].items()]
    rows += [
        (
            f"tokens cropped at max_characters_per_token={crop['max_characters_per_token']}",
            f"{crop['cropped_share']:.4%} ({crop['cropped_tokens']})",
        ),
        ("max_characters_per_token keeping 99.9% whole", crop["max_characters_keeping_99.9%"]),
        ("suggested model", f"conf/model/{sug['model']}.yaml"),
        ("suggested vocab_max_size", f"{sug['vocab_size']} ({sug['vocab_rule']})"),
    ]
    if "steps_per_epoch" in report:
        e = report["steps_per_epoch"]
        rows.append(
            (
                f"steps per epoch ({e['batch_size']} x {e['unroll_steps']} x {e['world_size']})",
                e["steps"],
            )
        )
    if report.get("epoch_time"):
        t = report["epoch_time"]
        rows.append(
            (
                f"epoch time, {t['model']} on this machine",
                f"{t['epoch_hours']:.2f} h ({t['step_seconds']:.3f} s/step)",
            )
        )
    return [{"what": w, "value": v} for w, v in rows]
