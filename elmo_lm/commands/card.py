"""The model card that ``python export.py ... card=true`` writes beside an export: a
``README.md`` with the Hugging Face Hub's YAML front matter, the model's shape, how it was
trained (from the checkpoint and, where found, its run directory), its held-out perplexity, its
tokenizer, how to load it here and in AllenNLP and, with its softmax exported, how to score text
and fine-tune with it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from elmo_lm.data.corpus import PreparedCorpus
from elmo_lm.errors import UserError
from elmo_lm.formats.tokenize import TokenizerSpec
from elmo_lm.training.config import override_key
from elmo_lm.training.module import ElmoLM
from elmo_lm.training.resume import RUN_OVERRIDES

CARD_FILE = "README.md"
"""The model card's name: what the Hub shows of a repository."""

METRICS = (
    ("val/ppl", "perplexity (mean of both directions)"),
    ("val/ppl_fwd", "forward perplexity"),
    ("val/ppl_bwd", "backward perplexity"),
    ("val/tokens", "held-out tokens"),
)
"""The run's ``metrics.json`` keys the card shows, and how it names them."""


def run_directory(ckpt: str | os.PathLike) -> Path | None:
    """The run directory of a checkpoint in ``<run>/checkpoints/``, else None."""
    path = Path(ckpt).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else None


def run_overrides(run_dir: Path | None) -> list[str]:
    """The command line the run was started with (``.hydra/overrides.yaml``); [] unknown."""
    if run_dir is None or not (run_dir / RUN_OVERRIDES).is_file():
        return []
    try:
        return [str(a) for a in OmegaConf.load(run_dir / RUN_OVERRIDES)]
    except (OmegaConfBaseException, OSError, TypeError, ValueError):
        return []


def _value(overrides: list[str], key: str) -> str | None:
    """The last value ``key=`` is given in ``overrides`` (quotes taken off), or None."""
    found = [a.split("=", 1)[1] for a in overrides if "=" in a and override_key(a) == key]
    return found[-1].strip("'\"") if found else None


def corpus_report(overrides: list[str]) -> tuple[str | None, dict]:
    """The prepared corpus of the run (``data.corpus=``) and its ``corpus.json`` report; the
    report is {} where the corpus is not given or not found (moved, say)."""
    corpus = _value(overrides, "data.corpus")
    if corpus is None:
        return None, {}
    try:
        return corpus, PreparedCorpus.load(corpus).report
    except UserError:
        return corpus, {}


def run_metrics(run_dir: Path | None) -> dict:
    """The run's last held-out metrics (``metrics.json``); {} where there are none."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (TypeError, OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


def _flat(report: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for key, value in report.items():
        if isinstance(value, dict):
            rows += _flat(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1 or value == 0 else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _table(rows: list[tuple[str, object]]) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {k} | {_number(v)} |" for k, v in rows)]


def _token_rows(options) -> list[tuple[str, object]]:
    """The card's rows of the token embedding: the character CNN's, or the words'."""
    cnn = options.char_cnn
    if cnn is None:
        tied = ", tied to the softmax" if options.share_embedding_softmax else ""
        return [
            ("word embedding", f"{options.n_tokens_vocab} x {options.lstm.projection_dim}{tied}")
        ]
    return [
        (
            "character CNN",
            f"{len(cnn.filters)} widths, {sum(n for _, n in cnn.filters)} "
            f"filters, {cnn.activation}, {cnn.n_highway} highway",
        ),
        (
            "character embedding",
            f"{cnn.embedding.dim}, up to {cnn.max_characters_per_token} characters per token",
        ),
    ]


def model_card(module: ElmoLM, checkpoint: dict, ckpt: str | os.PathLike, files: dict) -> str:
    """The text of ``README.md`` for the export ``files`` (``export``'s paths) of ``module``,
    trained as ``checkpoint`` (its ``global_step``, ``epoch``) at ``ckpt`` records."""
    options = module.options
    lstm = options.lstm
    tokenizer = module.hparams.get("tokenizer")
    spec = TokenizerSpec.from_dict(tokenizer, source=f"{ckpt}: tokenizer") if tokenizer else None
    run_dir = run_directory(ckpt)
    overrides = run_overrides(run_dir)
    corpus, report = corpus_report(overrides)
    metrics = run_metrics(run_dir)
    n_bilm = sum(p.numel() for p in module.bilm.parameters())
    n_softmax = sum(p.numel() for p in module.softmax_parameters())
    names = {kind: path.name for kind, path in files.items()}

    front = ["---", "library_name: elmo_lm", "tags:", "- elmo", "- bilm", "- feature-extraction"]
    if spec is not None and spec.name == "moses":  # whitespace's lang is only a default
        front += ["language:", f"- {spec.lang}"]
    front += [
        "# license: choose one (https://huggingface.co/docs/hub/repositories-licenses)",
        "---",
    ]
    lines = [
        *front,
        "",
        "# ELMo biLM",
        "",
        "A character-CNN, two-direction LSTM language model (ELMo), trained with elmo_lm and "
        f"exported as the original tools' pair: `{names['options']}` + `{names['weights']}` "
        f"(with {_listed(names)}).",
        "",
        "## Model",
        "",
        *_table(
            [
                (
                    "biLSTM",
                    f"{lstm.n_layers} layers of {lstm.dim} cells, projected to "
                    f"{lstm.projection_dim}",
                ),
                (
                    "vectors per token",
                    f"{lstm.n_layers + 1} layers of {options.n_directions * lstm.projection_dim}",
                ),
                *_token_rows(options),
                ("skip connections", lstm.use_skip_connections),
                ("cell clip / projection clip", f"{lstm.cell_clip} / {lstm.proj_clip}"),
                ("parameters (exported biLM)", n_bilm),
                (
                    "parameters (softmax, "
                    + ("exported)" if "softmax" in names else "training only)"),
                    n_softmax,
                ),
                ("softmax vocabulary", len(module.hparams["vocab"])),
            ]
        ),
        "",
        f"Every option is in `{names['options']}`.",
        "",
        "## Training",
        "",
        *_table(
            [
                ("steps", checkpoint.get("global_step", "unknown")),
                ("epoch", checkpoint["epoch"] + 1 if "epoch" in checkpoint else "unknown"),
                ("training tokens (corpus)", options.n_train_tokens),
                ("batch", f"{options.batch_size} x {options.unroll_steps} tokens"),
                (
                    "softmax",
                    f"sampled, {options.n_negative_samples_batch:,} negatives"
                    if module.sampled
                    else "full",
                ),
                ("learning rate (Adagrad)", module.hparams["lr"]),
                *((("prepared corpus", f"`{corpus}`"),) if corpus else ()),
                *(
                    (k, f"`{_value(overrides, k)}`")
                    for k in ("data.train_files", "data.valid_files", "data.vocab_file")
                    if _value(overrides, k) is not None
                ),
            ]
        ),
    ]
    if report:
        lines += ["", "The corpus, as `prepare.py` reported it:", "", *_table(_flat(report))]
    lines += ["", "## Held-out perplexity", ""]
    shown = [(label, metrics[key]) for key, label in METRICS if key in metrics]
    shown = [(k, int(v) if k == "held-out tokens" else v) for k, v in shown]
    lines += (
        [*_table(shown), "", "(the original `test()`'s: the LSTM state carried, full softmax)"]
        if shown
        else ["Not recorded (no `metrics.json` in the run directory)."]
    )
    lines += ["", "## Tokenizer", ""]
    lines += [
        f"`{spec.name}`"
        + (f", language `{spec.lang}`" if spec.name == "moses" else "")
        + f", Unicode normal form {spec.normalize or 'kept as it is'} (`tokenizer.json`): cut "
        "text the same way before embedding it."
        if spec is not None
        else "Not recorded (a checkpoint from before tokenizers were recorded, or a corpus "
        "given as plain files): give the model text tokenized as its training text was."
    ]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from elmo_lm import Elmo",
        "",
        'elmo = Elmo.from_pretrained("hf://you/name")  # this repository; or a local directory',
        'vectors = elmo.embed_sentences([["the", "bank", "approved", "the", "loan"]], mode="top")',
        "```",
        "",
        "In AllenNLP:",
        "",
        "```python",
        "from allennlp.modules.elmo import Elmo",
        "from huggingface_hub import hf_hub_download",
        "",
        f'files = [hf_hub_download("you/name", f) for f in ("{names["options"]}", '
        f'"{names["weights"]}")]',
        "elmo = Elmo(*files, num_output_representations=1)  # options_file, weight_file",
        "```",
        "",
    ]
    if "softmax" in names:
        lines += _softmax_section(names)
    return "\n".join(lines)


def _listed(names: dict[str, str]) -> str:
    """The files beside the pair, as the card's first paragraph names them."""
    kinds = (
        ("vocab", "the softmax vocabulary"),
        ("tokenizer", "the tokenizer"),
        ("softmax", "the softmax"),
    )
    files = [f"{what}, `{names[kind]}`" for kind, what in kinds if kind in names]
    return files[0] if len(files) == 1 else ", ".join(files[:-1]) + ", and " + files[-1]


def _softmax_section(names: dict[str, str]) -> list[str]:
    """How to score text with the exported softmax and fine-tune from it warm."""
    return [
        "## As a language model",
        "",
        f"The softmax is exported too: `{names['softmax']}` (`softmax/W` (V, P) and `softmax/b` "
        f"(V,), row i the i-th token of `{names['vocab']}`), the published models' layout. With "
        "it the model scores sentences and proposes words in context:",
        "",
        "```python",
        "from elmo_lm.training.scorer import LanguageModel",
        "",
        'lm = LanguageModel.from_pretrained("hf://you/name")  # this repository; or a local '
        "directory",
        '(score,) = lm.score_sentences([["the", "bank", "approved", "the", "loan"]])',
        '(subs,) = lm.substitutes([["I", "sat", "by", "the", "bank", "of", "the", "river"]], [4])',
        "```",
        "",
        "Fine-tuning on other text starts its softmax warm from it (each token of the new "
        f"vocabulary found in `{names['vocab']}` gets its row, new ones start fresh): "
        "`python train.py init_from=<this directory> data.train_files=... "
        "data.valid_files=...`.",
        "",
    ]
