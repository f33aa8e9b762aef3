"""A trained checkpoint as the original tools' files: ``python export.py ckpt=PATH.ckpt
out=weights.hdf5`` writes the weights, with ``options.json``, ``vocab.txt``, the tokenizer the
checkpoint records (``tokenizer.json``), with ``card=true`` a model card (``README.md``) and,
with ``softmax=true``, the softmax (``weights_softmax_weights.hdf5``) beside them (``USAGE``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from elmo_lm.commands.args import REQUIRED, parse_args
from elmo_lm.commands.card import CARD_FILE, model_card
from elmo_lm.errors import OutputError, os_reason, user_errors
from elmo_lm.formats.atomic import check_output_file, write_text
from elmo_lm.formats.checkpoint import CheckpointError, load_checkpoint
from elmo_lm.formats.softmax_file import save_softmax, softmax_name
from elmo_lm.formats.tokenize import TOKENIZER_FILE, TokenizerSpec
from elmo_lm.training.module import ElmoLM

USAGE = (
    "python export.py ckpt=PATH.ckpt out=weights.hdf5 [card=false] [softmax=false] "
    "[overwrite=false]"
)
DEFAULTS = {
    "ckpt": REQUIRED,  # a checkpoint written by train.py
    "out": "weights.hdf5",  # the weights; options.json, vocab.txt, tokenizer.json go beside them
    "card": False,  # true: a model card (README.md) beside them too, for the Hugging Face Hub
    "softmax": False,  # true: the softmax too (<stem>_softmax_weights.hdf5): score, start warm
    "overwrite": False,  # true: replace an earlier export there
}


def export(
    ckpt: str | os.PathLike,
    out: str | os.PathLike = "weights.hdf5",
    overwrite: bool = False,
    card: bool = False,
    softmax: bool = False,
) -> dict[str, Path]:
    """Writes a checkpoint's biLM as the original tools' files.

    ``out`` gets the weights; ``options.json`` (``n_characters`` 262, the original's keys only)
    and ``vocab.txt`` (the softmax vocabulary, one token per line) go beside it, and
    ``tokenizer.json`` where the checkpoint records its tokenizer (an earlier export's is
    removed, under ``overwrite``, where it records none). Each is written under a temporary
    name and renamed when complete.

    Args:
        overwrite: replace those files where they exist (else refused, before the checkpoint
            is read).
        card: write a model card (``README.md``, ``elmo_lm.commands.card``) beside them too.
        softmax: write the softmax beside them too, as ``<out stem>_softmax_weights.hdf5``
            (``elmo_lm.formats.softmax_file``; rows in ``vocab.txt``'s order); without it, an
            earlier export's is removed under ``overwrite``.

    Returns:
        The paths written: ``weights``, ``options``, ``vocab``, then ``tokenizer``, ``card``
        and ``softmax`` where written.

    Raises:
        OutputError: a file exists without ``overwrite``, or a path cannot take a file.
    """
    weights = check_output_file(out, "out", create_dir=True)
    paths = {
        "weights": weights,
        "options": weights.with_name("options.json"),
        "vocab": weights.with_name("vocab.txt"),
    }
    tokenizer = weights.with_name(TOKENIZER_FILE)
    readme = weights.with_name(CARD_FILE) if card else None
    softmax_file = weights.with_name(softmax_name(weights))
    ours = [*paths.values(), *([tokenizer] if tokenizer.exists() else []), *filter(None, [readme])]
    ours += [softmax_file] if softmax or softmax_file.exists() else []
    for path in ours:
        if path.is_dir():
            raise OutputError(f"{path}: is a directory; export needs it free for a file")
        if path.exists() and not overwrite:
            raise OutputError(
                f"{path}: exists; pass overwrite=true to replace the export there "
                f"({', '.join(p.name for p in ours)})"
            )
    checkpoint = load_checkpoint(ckpt)
    module = ElmoLM(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    spec = module.hparams.get("tokenizer")
    try:
        spec = TokenizerSpec.from_dict(spec, source=f"{ckpt}: tokenizer") if spec else None
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        module.bilm.to_hdf5(paths["options"], paths["weights"])
        module.vocab.save(paths["vocab"])
        if spec is not None:
            spec.save(tokenizer)
            paths["tokenizer"] = tokenizer
        elif tokenizer.is_file():  # an earlier export's, not this model's
            tokenizer.unlink()
        if readme is not None:
            shown = {**paths, **({"softmax": softmax_file} if softmax else {})}
            write_text(readme, model_card(module, checkpoint, ckpt, shown))
            paths["card"] = readme
        if softmax:
            save_softmax(softmax_file, module.softmax.weight, module.softmax.bias)
            paths["softmax"] = softmax_file
        elif softmax_file.is_file():  # an earlier export's, not these weights'
            softmax_file.unlink()
    except OSError as exc:
        raise OutputError(
            f"{exc.filename or weights}: cannot write the export: {os_reason(exc)}"
        ) from None
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    """``python export.py key=value ...`` (``USAGE``): the paths written, and how to load them."""
    with user_errors():
        paths = export(**parse_args(argv, DEFAULTS, USAGE))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    model = paths["weights"].parent
    print(
        f'load it: Elmo.from_pretrained("{model}"), elmo-embed model={model} ..., '
        f"python train.py init_from={model} ..."
    )
    if "card" in paths:
        print(
            f"share it: hf upload <you>/<name> {model} . "
            '(then Elmo.from_pretrained("hf://<you>/<name>"))'
        )
