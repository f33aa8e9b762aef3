"""A trained checkpoint as the original tools' files (``export.py``)."""

from __future__ import annotations

import os
from pathlib import Path

from elmo_lm.errors import OutputError, os_reason
from elmo_lm.formats.atomic import check_output_file
from elmo_lm.training.module import ElmoLM


def export(ckpt: str | os.PathLike, out: str | os.PathLike = "weights.hdf5") -> dict[str, Path]:
    """Writes a checkpoint's biLM as the original tools' files.

    ``out`` gets the weights; ``options.json`` (``n_characters`` 262) and ``vocab.txt`` (the
    softmax vocabulary, one token per line) go beside it.

    Returns:
        The paths written: ``weights``, ``options``, ``vocab``.
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
    module = ElmoLM.from_checkpoint(ckpt)
    try:
        module.bilm.to_hdf5(paths["options"], paths["weights"])
        module.vocab.save(paths["vocab"])
    except OSError as exc:
        raise OutputError(
            f"{exc.filename or weights}: cannot write the export: {os_reason(exc)}"
        ) from None
    return paths
