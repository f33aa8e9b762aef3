"""What the commands show on a terminal: the progress bar of every long job outside the Trainer: counting a corpus, ``elmo-embed``
over a file, building a token cache, downloading a model.

A bar is drawn (by tqdm, on stderr) when asked, or by default only when stderr is a terminal:
scripts, logs and tests stay clean. And plain-text tables for the benchmarks and demos.
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


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Rows of dicts as an aligned text table; columns default to the first row's keys."""
    columns = columns or list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = [
        " | ".join(c.ljust(widths[c]) for c in columns),
        "-+-".join("-" * widths[c] for c in columns),
    ]
    lines += [" | ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)
