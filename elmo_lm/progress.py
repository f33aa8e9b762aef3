"""The progress bar of every long job outside the Trainer: counting a corpus, ``elmo-embed``
over a file, building a token cache, downloading a model.

A bar is drawn (by tqdm, on stderr) when asked, or by default only when stderr is a terminal:
scripts, logs and tests stay clean.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def wanted(progress: bool | None) -> bool:
    """``progress`` as asked; ``None``: draw a bar only when stderr is a terminal."""
    if progress is not None:
        return progress
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def progress_bar(
    total: int | None, desc: str, unit: str = "it", progress: bool | None = None, **kwargs
) -> tqdm:
    """A tqdm bar on stderr, disabled unless ``wanted(progress)``; ``unit="B"`` counts bytes
    in kB, MB, ... (``unit_scale``)."""
    if unit == "B":
        kwargs = {"unit_scale": True, "unit_divisor": 1024, **kwargs}
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not wanted(progress),
        dynamic_ncols=True,
        **kwargs,
    )
