"""Word sense disambiguation by nearest neighbour: how well a biLM's layers tell WordNet's
senses apart (the ELMo paper's Table 5 protocol, on WordNet's usage examples,
``elmo_lm.embedding.senses``).

For each lemma, the queries are the examples of its senses that have two or more examples; the
candidates of a query are all the other examples of the same lemma; the prediction is the
sense of the candidate whose vector is nearest by cosine, ties (within ``TIE``) going to the
lower sense number. Scored beside the layers: their average and concatenation, the first sense
among the candidates' senses, a static vector (the lemma's layer-0 vector, the same in every
example: all candidates tie, so it scores as the first sense), and any other vectors given
(an untrained biLM, word2vec).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from elmo_lm.embedding.senses import SenseData, SenseExample
from elmo_lm.formats.characters import batch_to_ids
from elmo_lm.formats.options import BiLMOptions
from elmo_lm.model.bilm import BiLM

TIE = 1e-6
"""Cosines this close to the best are ties (identical vectors give equal cosines up to
rounding)."""


@dataclass
class WsdResult:
    """Accuracy per representation (``layer_0`` ... ``concat``, ``first_sense``, ``static``,
    and the extra ones), over ``queries`` queries; ``notes`` say how a row was made."""

    accuracy: dict[str, float]
    queries: int
    notes: dict[str, str] = field(default_factory=dict)


def _groups(examples: Sequence[SenseExample]) -> list[np.ndarray]:
    """The example indices of each lemma, in order of first appearance."""
    index: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(examples):
        index.setdefault(e.key, []).append(i)
    return [np.array(rows) for rows in index.values()]


def _queries(senses: np.ndarray) -> np.ndarray:
    """The positions whose sense has two or more examples in ``senses``."""
    values, counts = np.unique(senses, return_counts=True)
    return np.flatnonzero(np.isin(senses, values[counts >= 2]))


def nearest_sense_predictions(
    vectors: np.ndarray, examples: Sequence[SenseExample]
) -> tuple[np.ndarray, np.ndarray]:
    """The true and the predicted sense of every query (in example order), by nearest neighbour.

    Args:
        vectors: (n_examples, dim), row i the target vector of ``examples[i]``.
        examples: grouped by lemma or not; a query's candidates are the other examples of its
            lemma.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.shape[0] != len(examples):
        raise ValueError(f"{vectors.shape[0]} vectors for {len(examples)} examples")
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    truth, predicted = [], []
    for rows in _groups(examples):
        senses = np.array([examples[i].sense for i in rows])
        queries = _queries(senses)
        cos = unit[rows[queries]] @ unit[rows].T  # (queries, lemma's examples)
        cos[np.arange(len(queries)), queries] = -np.inf  # a query is not its own candidate
        ties = cos >= cos.max(axis=1, keepdims=True) - TIE
        predicted += [int(senses[tied].min()) for tied in ties]
        truth += senses[queries].tolist()
    return np.array(truth, dtype=np.int64), np.array(predicted, dtype=np.int64)


def nearest_sense_accuracy(vectors: np.ndarray, examples: Sequence[SenseExample]) -> float:
    """The share of queries whose nearest candidate has their sense (NaN without queries)."""
    truth, predicted = nearest_sense_predictions(vectors, examples)
    return float(np.mean(truth == predicted)) if len(truth) else float("nan")


def first_sense_accuracy(examples: Sequence[SenseExample]) -> float:
    """The baseline that predicts, for each query, the lowest sense number of its candidates."""
    hits = []
    for rows in _groups(examples):
        senses = np.array([examples[i].sense for i in rows])
        for q in _queries(senses):
            hits.append(np.delete(senses, q).min() == senses[q])
    return float(np.mean(hits)) if hits else float("nan")


@torch.no_grad()
def target_layers(bilm: BiLM, examples: Sequence[SenseExample], batch_size: int = 64) -> np.ndarray:
    """The biLM's layers at each example's target, (n_examples, L + 1, D) float32.

    Runs in eval mode without gradients, batched by length, and puts the biLM back in the
    mode it was in.
    """
    was_training = bilm.training
    bilm.eval()
    device = next(bilm.parameters()).device
    max_chars = bilm.options.char_cnn.max_characters_per_token
    out = np.zeros((len(examples), bilm.n_representations, bilm.output_dim), dtype=np.float32)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].tokens))
    try:
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            ids = batch_to_ids([list(examples[i].tokens) for i in index], max_chars)
            layers = torch.stack(bilm(ids.to(device))["layers"], dim=1)  # (B, L + 1, T, D)
            targets = torch.tensor([examples[i].target for i in index], device=layers.device)
            picked = layers[torch.arange(len(index), device=layers.device), :, targets]
            out[index] = picked.float().cpu().numpy()  # (B, L + 1, D)
    finally:
        bilm.train(was_training)
    return out


def representations(layers: np.ndarray) -> dict[str, np.ndarray]:
    """``layer_0`` ... ``layer_L``, ``average`` and ``concat`` of (n, L + 1, D) target layers."""
    reps = {f"layer_{i}": layers[:, i] for i in range(layers.shape[1])}
    reps["average"] = layers.mean(axis=1)
    reps["concat"] = layers.reshape(layers.shape[0], -1)
    return reps


@torch.no_grad()
def static_vectors(bilm: BiLM, examples: Sequence[SenseExample]) -> np.ndarray:
    """Each example's lemma's layer-0 vector (the token embedding of the lemma alone):
    one vector per lemma, the same in all its examples, (n_examples, D)."""
    lemmas = list(dict.fromkeys(e.lemma for e in examples))
    alone = [SenseExample(w, "n", 1, "", (w,), 0) for w in lemmas]
    layer0 = target_layers(bilm, alone)[:, 0]
    row = {w: i for i, w in enumerate(lemmas)}
    return layer0[[row[e.lemma] for e in examples]]


def untrained_like(bilm: BiLM | BiLMOptions, seed: int = 0) -> BiLM:
    """A biLM of the same options, freshly initialised from ``seed``, on the same device."""
    options = bilm.options if isinstance(bilm, BiLM) else bilm
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = BiLM(options)
    if isinstance(bilm, BiLM):
        fresh.to(next(bilm.parameters()).device)
    return fresh.eval()


def probe_layers(bilm: BiLM, data: SenseData, batch_size: int = 64) -> dict[str, float]:
    """The accuracy of each of ``bilm``'s layers, their average and concatenation."""
    layers = target_layers(bilm, data.examples, batch_size)
    return {
        name: nearest_sense_accuracy(vectors, data.examples)
        for name, vectors in representations(layers).items()
    }


def probe_wsd(
    bilm: BiLM,
    data: SenseData,
    untrained: BiLM | None = None,
    extra: dict[str, np.ndarray] | None = None,
    batch_size: int = 64,
) -> WsdResult:
    """Every row of the probe: ``bilm``'s representations, ``first_sense``, ``static``, the
    best representation of ``untrained`` (if given) and each of ``extra``'s vectors (name ->
    (n_examples, dim) target vectors, e.g. word2vec's)."""
    accuracy = probe_layers(bilm, data, batch_size)
    accuracy["first_sense"] = first_sense_accuracy(data.examples)
    accuracy["static"] = nearest_sense_accuracy(static_vectors(bilm, data.examples), data.examples)
    notes = {
        "first_sense": "the lowest sense number among the candidates",
        "static": "the lemma's layer-0 vector, the same in every example: all candidates tie",
    }
    if untrained is not None:
        scores = probe_layers(untrained, data, batch_size)
        best = max(scores, key=lambda k: scores[k])
        accuracy["untrained"] = scores[best]
        notes["untrained"] = f"a fresh biLM of the same options, its best row ({best})"
    for name, vectors in (extra or {}).items():
        accuracy[name] = nearest_sense_accuracy(vectors, data.examples)
    return WsdResult(accuracy, data.counts()["queries"], notes)
