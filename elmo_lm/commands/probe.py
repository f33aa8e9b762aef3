"""What a model's vectors know, measured directly: ``python probe.py model=DIR task=wsd``
prints a table and, as its last line, the same as JSON (``USAGE``; docs/EMBEDDINGS.md).

``task=wsd`` is word sense disambiguation by nearest neighbour on WordNet's usage examples
(``elmo_lm.embedding.probe_wsd``): each biLM layer, their average and concatenation, beside the
first-sense baseline, a static vector, a freshly initialised biLM of the same options and
word2vec trained on the model's corpus (``word2vec=auto``: the corpus given as ``corpus=``, else
the one the checkpoint's run trained on; skipped, with a note, where it is not known).
``task=tag`` trains a linear classifier per layer on the tags of a CoNLL-U or two-column file
(``train=``, ``dev=``; ``elmo_lm.embedding.probe_tagging``) and gives train and dev accuracy.
Tasks are rows of ``TASKS``: a function of the loaded model and the parsed arguments that
returns the table, the lines under it and the JSON (``TaskReport``); a task's own keys go into
``DEFAULTS`` and ``USAGE`` beside the others.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from elmo_lm.commands.args import REQUIRED, ArgumentError, parse_args
from elmo_lm.commands.card import run_directory
from elmo_lm.commands.embed import load_elmo
from elmo_lm.commands.word2vec import train_word2vec
from elmo_lm.console import format_table
from elmo_lm.data.corpus import Files, PreparedCorpus
from elmo_lm.embedding.elmo import Elmo
from elmo_lm.embedding.probe_tagging import tagging_probe
from elmo_lm.embedding.probe_wsd import WsdResult, probe_wsd, untrained_like
from elmo_lm.embedding.senses import (
    example_tokenizer,
    parse_lemmas,
    read_sense_examples,
)
from elmo_lm.embedding.word_vectors import WordVectors
from elmo_lm.errors import MissingExtraError, UserError, user_errors

USAGE = (
    "python probe.py model=DIR|CKPT|small|... [task=wsd|tag] [max_lemmas=0] [lemmas=a,b|FILE] "
    "[seed=0] [word2vec=auto|none|FILE] [corpus=DIR|FILE] [train=FILE] [dev=FILE] "
    "[column=upos|xpos] [batch_size=64] [device=auto]"
)
DEFAULTS = {
    "model": REQUIRED,  # a published name, an exported directory, or a train.py checkpoint
    "task": "wsd",  # one of TASKS
    "max_lemmas": 0,  # wsd: a sample of this many lemmas (0: all)
    "lemmas": None,  # wsd: only these lemmas, a comma list or a file of one a line
    "seed": 0,  # the lemma sample and the untrained biLM
    "word2vec": "auto",  # auto: trained here on the model's corpus; none; or a word2vec file
    "corpus": None,  # the corpus word2vec=auto trains on: a prepared directory or text files
    "train": None,  # tag: a CoNLL-U file or token<TAB>tag lines, a blank line between sentences
    "dev": None,  # tag: the same; none: every tenth sentence of train is held out
    "column": "upos",  # tag: the CoNLL-U column, upos or xpos
    "batch_size": 64,  # examples per biLM call
    "device": "auto",  # auto, cpu, cuda, cuda:N or mps (elmo_lm.commands.devices)
}
ROWS = ("first_sense", "static", "untrained", "word2vec")  # after the model's own rows


@dataclass
class TaskReport:
    """What a task prints: a table, lines under it, and the JSON of its last line."""

    rows: list[dict]
    lines: list[str] = field(default_factory=list)
    result: dict = field(default_factory=dict)


def load_model(model: str, device: str = "auto") -> Elmo:
    """The embedder of ``model``: a checkpoint of ``train.py`` (``.ckpt``), else a published
    name or a directory holding options.json and the weights (``load_elmo``)."""
    if model.endswith(".ckpt"):
        return load_elmo(ckpt=model, device=device)
    return load_elmo(model=model, device=device)


def run_corpus(model: str) -> Files | None:
    """The training files of the run a checkpoint in ``<run>/checkpoints/`` belongs to (its
    ``.hydra/config.yaml``: ``data.corpus``, else ``data.train_files``), or None."""
    run = run_directory(model) if model.endswith(".ckpt") else None
    if run is None or not (run / ".hydra" / "config.yaml").is_file():
        return None
    try:
        cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
        prepared = OmegaConf.select(cfg, "data.corpus")
        if prepared:
            return PreparedCorpus.load(prepared).train_files
        files = OmegaConf.select(cfg, "data.train_files")
        return OmegaConf.to_container(files) if OmegaConf.is_config(files) else files
    except (OmegaConfBaseException, UserError, OSError, ValueError):
        return None


def word2vec_vectors(
    word2vec: str, corpus: str | None, model: str, seed: int = 0
) -> tuple[WordVectors | None, str]:
    """The word2vec vectors ``word2vec=`` names, and where they come from (or why none)."""
    if word2vec == "none":
        return None, "left out (word2vec=none)"
    if word2vec != "auto":
        return WordVectors.from_word2vec(word2vec), word2vec
    where = corpus or run_corpus(model)
    if where is None:
        return (
            None,
            "skipped: the model's corpus is not known; pass corpus=DIR|FILE or word2vec=FILE",
        )
    prepared = isinstance(where, str) and Path(where).is_dir()
    with tempfile.TemporaryDirectory(prefix="elmo-probe-") as tmp:
        out = Path(tmp) / "vectors.txt"
        try:
            trained = train_word2vec(
                None if prepared else where,
                out,
                workers=1,
                seed=seed,
                progress=False,
                corpus=where if prepared else None,
            )
        except MissingExtraError as exc:
            return None, f"skipped: {exc}"
        vectors = WordVectors.from_word2vec(trained.path)
    shown = where if isinstance(where, str) else ", ".join(map(str, where))
    return vectors, f"trained here on {shown} (skip-gram, {trained.dim} dims, 5 epochs)"


def wsd_task(elmo: Elmo, args: dict) -> TaskReport:
    """``task=wsd``: the WordNet sense probe of ``elmo``'s biLM and its baselines."""
    cut, how = example_tokenizer(elmo.tokenizer)
    start = time.perf_counter()
    data = read_sense_examples(
        cut, args["max_lemmas"] or None, args["seed"], parse_lemmas(args["lemmas"])
    )
    vectors, origin = word2vec_vectors(
        args["word2vec"], args["corpus"], args["model"], args["seed"]
    )
    extra = {}
    if vectors is not None:
        extra["word2vec"] = vectors.embed([e.tokens[e.target] for e in data.examples])
    untrained = untrained_like(elmo.bilm, args["seed"])
    result = probe_wsd(elmo.bilm, data, untrained, extra, args["batch_size"])
    result.notes["word2vec"] = origin
    counts = data.counts()
    lines = [
        f"tokenized as {how}",
        f"{counts['lemmas']} lemmas (of {counts['lemmas_examined']} nouns and verbs of two or "
        f"more senses examined), {counts['examples']} examples, {counts['queries']} queries",
        "examples left out: " + _reasons(counts["skipped_examples"]),
        "lemmas left out: " + _reasons(counts["skipped_lemmas"]),
        f"{time.perf_counter() - start:.1f} s",
    ]
    return TaskReport(_rows(result), lines, {"wsd": _rounded(result), "counts": counts})


def _reasons(counts: dict) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in counts.items()) or "none"


def _rows(result: WsdResult) -> list[dict]:
    names = [n for n in result.accuracy if n not in ROWS] + [n for n in ROWS]
    return [
        {
            "vectors": name,
            "accuracy": f"{result.accuracy[name]:.3f}" if name in result.accuracy else "-",
            "queries": result.queries if name in result.accuracy else 0,
            "note": result.notes.get(name, ""),
        }
        for name in names
    ]


def _rounded(result: WsdResult) -> dict:
    return {name: round(value, 4) for name, value in result.accuracy.items()}


def tag_task(elmo: Elmo, args: dict) -> TaskReport:
    """``task=tag``: a linear tagger per layer on ``train=`` (``elmo_lm.embedding.probe_tagging``)."""
    if not args["train"]:
        raise ArgumentError("task=tag needs train=FILE (CoNLL-U or token<TAB>tag lines)")
    result = tagging_probe(
        elmo, args["train"], args["dev"], column=args["column"], seed=args["seed"]
    )
    rows = [
        {"vectors": name, "train": f"{acc['train']:.3f}", "dev": f"{acc['dev']:.3f}"}
        for name, acc in result.accuracy.items()
    ]
    c = result.counts
    lines = [
        f"{c['sentences']['train']} train sentences ({c['tokens']['train']} tokens), "
        f"{c['sentences']['dev']} dev ({c['tokens']['dev']} tokens; {result.dev}), "
        f"{c['tags']} {result.column} tags; majority tag {c['majority_tag']}",
        f"{result.seconds:.1f} s",
    ]
    return TaskReport(rows, lines, result.to_dict())


TASKS: dict[str, Callable[[Elmo, dict], TaskReport]] = {"wsd": wsd_task, "tag": tag_task}
"""Each task of ``task=``: (the loaded model, the parsed arguments) -> what it prints."""


def probe(argv: Sequence[str] | None = None) -> TaskReport:
    """Parses ``argv`` (``USAGE``), loads the model and runs its task.

    Raises:
        ArgumentError: an unknown key, task or device, or ``max_lemmas`` below 0.
        ElmoError, CheckpointError: a model that cannot be read.
        WordNetError: no WordNet files, or a lemma list that matches nothing.
    """
    args = parse_args(argv, DEFAULTS, USAGE)
    if args["task"] not in TASKS:
        raise ArgumentError(f"task={args['task']}: use one of {', '.join(TASKS)}")
    if args["max_lemmas"] < 0 or args["batch_size"] < 1:
        raise ArgumentError("max_lemmas must be >= 0 (0: all) and batch_size >= 1")
    if args["word2vec"] not in ("auto", "none") and not os.path.isfile(args["word2vec"]):
        raise ArgumentError(f"word2vec={args['word2vec']}: no such file; use auto, none or a file")
    elmo = load_model(args["model"], args["device"])
    return TASKS[args["task"]](elmo, args)


def main(argv: Sequence[str] | None = None) -> None:
    """``python probe.py key=value ...`` (``USAGE``): the table, then one line of JSON."""
    with user_errors():
        report = probe(argv)
    print(format_table(report.rows))
    for line in report.lines:
        print(line)
    print(json.dumps(report.result))
