"""A tagging probe: how well each layer of a biLM tells a token's tag (part of speech, say), as
the accuracy of a linear classifier on its frozen vectors (the ELMo paper's POS probe, Table 6).

``tagging_probe(elmo, "en_ewt-ud-train.conllu", "en_ewt-ud-dev.conllu")`` embeds every sentence
once (``mode="all"``), then trains one softmax regression per representation (each layer, their
average, their concatenation) on the train split and reports its accuracy on both splits, beside
the majority tag. Input: CoNLL-U (read with the ``conllu`` package, extra ``probe``) or a
two-column file (token TAB tag, a blank line between sentences).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from elmo_lm.data.text import text_lines
from elmo_lm.embedding.elmo import Elmo
from elmo_lm.errors import UserError, require

COLUMNS = ("upos", "xpos")
"""The CoNLL-U column that holds the tag: UD's universal part of speech, or the treebank's own."""

CONLLU_FIELDS = "ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC"
MIN_UPDATES = 100
"""A small train split gets more passes than ``epochs``: at least this many updates in all."""


class TaggingError(UserError):
    """A tagged file that cannot be read, or a probe that cannot run on it."""


Tagged = tuple[list[str], list[str]]
"""One sentence: its tokens and their tags."""


@dataclass(frozen=True)
class TaggingResult:
    """What ``tagging_probe`` measured.

    Attributes:
        accuracy: per representation (``layer_0`` .. ``layer_L``, ``average``, ``concat``, and
            the ``majority`` baseline: the train split's most frequent tag for every token),
            ``{"train": .., "dev": ..}``, fractions of tokens.
        counts: ``sentences`` and ``tokens`` (each ``{"train": .., "dev": ..}``), ``tags`` (in the
            train split), ``dev_unseen`` (dev tokens whose tag the train split lacks, counted
            wrong), ``majority_tag``.
        column: the tag column (``upos``, ``xpos``, or ``tag`` for a two-column file).
        dev: where the dev split came from, in words.
        seconds: wall time, embedding and training.
    """

    accuracy: dict[str, dict[str, float]]
    counts: dict[str, object]
    column: str
    dev: str
    seconds: float

    def to_dict(self) -> dict[str, object]:
        """``{"tag": {"layer_0": {"train": .., "dev": ..}, ...}, "counts": {...}}``."""
        return {"tag": self.accuracy, "counts": self.counts}

    def format(self) -> str:
        """A table: one row per representation, train and dev accuracy."""
        c = self.counts
        lines = [
            f"tagging probe ({self.column}): {c['sentences']['train']} train sentences "
            f"({c['tokens']['train']} tokens), {c['sentences']['dev']} dev "
            f"({c['tokens']['dev']} tokens; {self.dev}), {c['tags']} tags",
            f"{'representation':<20} {'train':>6} {'dev':>6}",
        ]
        for name, acc in self.accuracy.items():
            label = f"majority ({c['majority_tag']})" if name == "majority" else name
            lines.append(f"{label:<20} {acc['train']:>6.3f} {acc['dev']:>6.3f}")
        if c["dev_unseen"]:
            lines.append(f"{c['dev_unseen']} dev tokens have a tag not in train (counted wrong)")
        return "\n".join(lines)


def is_conllu(path: str | os.PathLike) -> bool:
    """Whether ``read_tagged`` reads ``path`` as CoNLL-U: it is named ``*.conllu``, or its first
    line that is not blank is a comment (``#``) or has three or more tab-separated fields; else
    it is a two-column file."""
    if Path(path).suffix == ".conllu":
        return True
    for line in text_lines(path, TaggingError):
        if line.strip():
            return line.strip().startswith("#") or line.count("\t") >= 2
    return False


def read_tagged(path: str | os.PathLike, column: str = "upos") -> list[Tagged]:
    """The sentences of a CoNLL-U file (its ``column``) or of a two-column file (``is_conllu``).

    Raises:
        TaggingError: a missing or empty file, a malformed line (its file and line number), a
            token without a tag, or an unknown ``column``.
        MissingExtraError: CoNLL-U without the ``conllu`` package.
    """
    if column not in COLUMNS:
        raise TaggingError(f"column={column!r}: use one of {', '.join(COLUMNS)}")
    path = Path(path)
    if not path.is_file():
        raise TaggingError(f"{path}: file not found; give a CoNLL-U or a token<TAB>tag file")
    conllu = is_conllu(path)
    lines = list(enumerate(text_lines(path, TaggingError), start=1))
    sentences = []
    for block in _blocks(lines):
        if conllu:
            sentence = _conllu_sentence(path, block, column)
        else:
            sentence = _two_column_sentence(path, block)
        if sentence[0]:
            sentences.append(sentence)
    if not sentences:
        raise TaggingError(
            f"{path}: holds no tagged tokens; give a CoNLL-U file, or token<TAB>tag lines with "
            "a blank line between sentences"
        )
    return sentences


def _blocks(lines: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    """The (line number, line) groups between blank lines."""
    blocks, block = [], []
    for number, line in lines:
        if line.strip():
            block.append((number, line))
        elif block:
            blocks.append(block)
            block = []
    return blocks + [block] if block else blocks


def _conllu_sentence(path: Path, block: list[tuple[int, str]], column: str) -> Tagged:
    """One CoNLL-U sentence, multiword-token ranges (``1-2``) and empty nodes (``1.1``) left
    out."""
    conllu = require("conllu", "probe", "reading a CoNLL-U file")
    token_lines = [(n, line) for n, line in block if not line.strip().startswith("#")]
    try:
        parsed = conllu.parse_token_and_metadata("\n".join(line for _, line in block))
    except conllu.exceptions.ParseException:
        parsed = None
    if parsed is None or len(parsed) != len(token_lines):
        for number, line in token_lines:  # conllu names no line: find it
            try:
                conllu.parse_token_and_metadata(line)
            except conllu.exceptions.ParseException as exc:
                raise TaggingError(
                    f"{path}:{number}: {exc} A CoNLL-U token line has 10 tab-separated "
                    f"columns ({CONLLU_FIELDS}); fix or remove the line"
                ) from None
        raise TaggingError(f"{path}:{block[0][0]}: the sentence here cannot be read as CoNLL-U")
    tokens, tags = [], []
    for (number, _), token in zip(token_lines, parsed, strict=True):
        if len(token) < 10:
            raise TaggingError(
                f"{path}:{number}: {len(token)} columns where a CoNLL-U token line has 10 "
                f"({CONLLU_FIELDS}, tab-separated); a two-column file has token<TAB>tag"
            )
        if not isinstance(token["id"], int):
            continue  # a multiword token's range, or an empty node
        if token[column] in (None, "_"):
            other = COLUMNS[1 - COLUMNS.index(column)]
            raise TaggingError(
                f"{path}:{number}: token {token['form']!r} has no {column} tag (_); "
                f"tag it, or probe column={other}"
            )
        tokens.append(token["form"])
        tags.append(token[column])
    return tokens, tags


def _two_column_sentence(path: Path, block: list[tuple[int, str]]) -> Tagged:
    tokens, tags = [], []
    for number, line in block:
        fields = line.strip("\r\n").split("\t")
        if len(fields) == 1:
            fields = line.split()
        fields = [f.strip() for f in fields]
        if len(fields) != 2 or not all(fields):
            raise TaggingError(
                f"{path}:{number}: {len([f for f in fields if f])} columns where a two-column "
                "file has 2: token<TAB>tag, a blank line between sentences (or give CoNLL-U)"
            )
        tokens.append(fields[0])
        tags.append(fields[1])
    return tokens, tags


def hold_out(sentences: Sequence[Tagged]) -> tuple[list[Tagged], list[Tagged]]:
    """(train, dev): every tenth sentence (the 10th, 20th, ...; of fewer than ten, the last one)
    goes to dev."""
    dev_index = set(range(9, len(sentences), 10)) or {len(sentences) - 1}
    train = [s for i, s in enumerate(sentences) if i not in dev_index]
    dev = [s for i, s in enumerate(sentences) if i in dev_index]
    return train, dev


def representations(layers: np.ndarray) -> dict[str, np.ndarray]:
    """(L + 1, N, D) token vectors -> ``layer_0`` .. ``layer_L`` (N, D), ``average`` (N, D) and
    ``concat`` (N, (L + 1) D)."""
    reps = {f"layer_{k}": layers[k] for k in range(len(layers))}
    reps["average"] = layers.mean(axis=0)
    reps["concat"] = np.concatenate(list(layers), axis=-1)
    return reps


def train_linear(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> nn.Linear:
    """Softmax regression (``nn.Linear`` + cross-entropy) on (N, d) features and (N,) labels,
    trained by Adam from zeros on minibatches shuffled by ``seed``, its learning rate decayed
    linearly from ``lr`` to 0: at least ``epochs`` passes, and as many more as ``MIN_UPDATES``
    updates take."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Linear(x.shape[1], n_classes).to(x.device)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    n_batches = math.ceil(len(x) / batch_size)
    passes = max(epochs, math.ceil(MIN_UPDATES / n_batches))
    updates = passes * n_batches
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / updates)
    for _ in range(passes):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), batch_size):
            index = order[start : start + batch_size]
            loss = nn.functional.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            decay.step()
    return model


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """On the CPU, one thread: an update of a few hundred tokens is too small for more to help,
    and on a busy machine more make it several times slower."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def tagging_probe(
    elmo: Elmo,
    train_file: str | os.PathLike,
    dev_file: str | os.PathLike | None = None,
    *,
    column: str = "upos",
    epochs: int = 10,
    lr: float = 0.03,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> TaggingResult:
    """Train and dev accuracy of a linear classifier per representation of ``elmo``'s layers.

    Tokens are taken as the file gives them (the treebank's tokens). For a model trained on
    Moses-tokenized text that is close but not identical: UD splits ``don't`` as ``do n't``,
    Moses as ``don 't``. Each sentence is embedded once; the vectors are standardised with the
    train split's mean and spread (an affine change: the same linear classifiers, better
    conditioned) and every classifier trains on the same cached vectors.

    Args:
        elmo: the embedder (without word vectors: the biLM's layers are probed).
        train_file: CoNLL-U or two-column (``read_tagged``).
        dev_file: the same; None: every tenth sentence of ``train_file`` (``hold_out``).
        column: the CoNLL-U tag column, ``upos`` or ``xpos`` (unused for two-column files).
        epochs: passes over the train tokens (more for a small file: ``MIN_UPDATES``).
        lr: Adam's learning rate at the start (decayed linearly to 0).
        seed: the order of the minibatches; the same seed gives the same result.
        batch_size: tokens per update.
        device: where the classifiers train (on the CPU, on one thread); None: ``elmo``'s
            device.

    Raises:
        TaggingError: a file ``read_tagged`` refuses, or a train file of one sentence and no
            dev file.
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise TaggingError("epochs and batch_size must be at least 1, lr above 0")
    started = time.perf_counter()
    train, dev, dev_from = _splits(train_file, dev_file, column)
    vectors = elmo.embed_sentences([s for s, _ in train + dev], mode="all")
    layers = np.concatenate(vectors, axis=1)  # (L + 1, N train + N dev, D)
    train_tags = [t for _, tags in train for t in tags]
    dev_tags = [t for _, tags in dev for t in tags]
    tag_counts = Counter(train_tags)
    classes = sorted(tag_counts)
    label = {tag: i for i, tag in enumerate(classes)}
    target = torch.device(device) if device is not None else elmo.device
    y = torch.tensor([label.get(t, -1) for t in train_tags + dev_tags], device=target)
    training = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed}
    accuracy = {
        name: _accuracy(features, y, len(train_tags), len(classes), **training)
        for name, features in representations(layers).items()
    }
    majority = tag_counts.most_common(1)[0][0]
    accuracy["majority"] = {
        "train": tag_counts[majority] / len(train_tags),
        "dev": sum(t == majority for t in dev_tags) / len(dev_tags),
    }
    counts = {
        "sentences": {"train": len(train), "dev": len(dev)},
        "tokens": {"train": len(train_tags), "dev": len(dev_tags)},
        "tags": len(classes),
        "dev_unseen": int((y[len(train_tags) :] < 0).sum().item()),
        "majority_tag": majority,
    }
    column = column if is_conllu(train_file) else "tag"
    return TaggingResult(accuracy, counts, column, dev_from, time.perf_counter() - started)


def _splits(
    train_file: str | os.PathLike, dev_file: str | os.PathLike | None, column: str
) -> tuple[list[Tagged], list[Tagged], str]:
    """The train and dev sentences, and where the dev ones came from, in words."""
    sentences = read_tagged(train_file, column)
    if dev_file is not None:
        return sentences, read_tagged(dev_file, column), str(dev_file)
    if len(sentences) < 2:
        raise TaggingError(
            f"{train_file}: one sentence; the probe needs two or more to hold out a dev split, "
            "or a dev file"
        )
    train, dev = hold_out(sentences)
    return train, dev, f"every tenth sentence of {Path(train_file).name}"


def _accuracy(
    features: np.ndarray, y: torch.Tensor, n_train: int, n_classes: int, **training
) -> dict[str, float]:
    """Train and dev accuracy of ``train_linear`` on (N, d) features, the first ``n_train``
    rows the train split's; a label of -1 (a tag the train split lacks) is never right."""
    x = torch.from_numpy(np.ascontiguousarray(features)).to(y.device)
    mean, std = x[:n_train].mean(0), x[:n_train].std(0, correction=0)
    x = (x - mean) / std.clamp_min(1e-6)
    with _one_cpu_thread(y.device):
        model = train_linear(x[:n_train], y[:n_train], n_classes, **training)
    with torch.no_grad():
        right = model(x).argmax(-1) == y
    return {
        "train": right[:n_train].sum().item() / n_train,
        "dev": right[n_train:].sum().item() / (len(y) - n_train),
    }
