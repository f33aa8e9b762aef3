"""A trained checkpoint as the original tools' files: ``python export.py ckpt=PATH.ckpt
out=weights.hdf5`` writes the weights, with ``options.json`` and ``vocab.txt`` beside them
(``USAGE``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from elmo_lm.commands.args import REQUIRED, parse_args
from elmo_lm.errors import OutputError, os_reason, user_errors
from elmo_lm.formats.atomic import check_output_file
from elmo_lm.training.module import ElmoLM

USAGE = "python export.py ckpt=PATH.ckpt out=weights.hdf5 [overwrite=false]"
DEFAULTS = {
    "ckpt": REQUIRED,  # a checkpoint written by train.py
    "out": "weights.hdf5",  # the weights; options.json and vocab.txt go beside them
    "overwrite": False,  # true: replace an earlier export there
}


def export(
    ckpt: str | os.PathLike, out: str | os.PathLike = "weights.hdf5", overwrite: bool = False
) -> dict[str, Path]:
    """Writes a checkpoint's biLM as the original tools' files.

    ``out`` gets the weights; ``options.json`` (``n_characters`` 262) and ``vocab.txt`` (the
    softmax vocabulary, one token per line) go beside it. Each is written under a temporary
    name and renamed when complete.

    Args:
        overwrite: replace those files where they exist (else refused, before the checkpoint
            is read).

    Returns:
        The paths written: ``weights``, ``options``, ``vocab``.

    Raises:
        OutputError: a file exists without ``overwrite``, or a path cannot take a file.
    """
    weights = check_output_file(out, "out", create_dir=True)
    paths = {
        "weights": weights,
        "options": weights.with_name("options.json"),
        "vocab": weights.with_name("vocab.txt"),
    }
    for path in paths.values():
        if path.is_dir():
            raise OutputError(f"{path}: is a directory; export needs it free for a file")
        if path.exists() and not overwrite:
            raise OutputError(
                f"{path}: exists; pass overwrite=true to replace the export there "
                f"({weights.name}, options.json, vocab.txt)"
            )
    module = ElmoLM.from_checkpoint(ckpt)
    try:
        module.bilm.to_hdf5(paths["options"], paths["weights"])
        module.vocab.save(paths["vocab"])
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
