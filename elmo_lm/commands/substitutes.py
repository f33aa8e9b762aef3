"""The likeliest words at a position of a sentence: ``python substitutes.py ckpt=PATH.ckpt
text="I sat by the bank of the river ." position=4`` prints a table of the forward LM's (left
context), the backward LM's (right context) and both together, then the same as one JSON line
(``USAGE``; ``LanguageModel.substitutes``)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from elmo_lm.commands.args import REQUIRED, ArgumentError, parse_args
from elmo_lm.commands.devices import parse_device
from elmo_lm.console import format_table
from elmo_lm.errors import user_errors
from elmo_lm.training.scorer import LanguageModel, Substitutes, check_start

USAGE = (
    'python substitutes.py ckpt=PATH.ckpt text="a tokenized sentence" position=N [k=10] '
    "[start=warm|zero] [device=auto]"
)
DEFAULTS = {
    "ckpt": REQUIRED,  # a checkpoint written by train.py
    "text": REQUIRED,  # the sentence, its words split on whitespace
    "position": REQUIRED,  # the word's index, from 0
    "k": 10,  # words per list
    "start": "warm",  # where the sentence starts: warm (BiLM.warm_state) or zero
    "device": "auto",  # auto, cpu, cuda, cuda:N or mps (elmo_lm.commands.devices)
}


def substitutes(
    ckpt: str | os.PathLike,
    text: str,
    position: int | str,
    k: int = 10,
    start: str = "warm",
    device: str = "auto",
) -> Substitutes:
    """The ``k`` likeliest words at ``position`` (from 0) of the whitespace-split ``text``.

    Raises:
        ArgumentError: ``position`` not an integer, or a ``device`` this machine lacks.
        ScorerError: an empty ``text``, a position outside it, an unknown ``start``.
        CheckpointError: ``ckpt`` is missing or not a checkpoint.
    """
    device = parse_device(device)
    try:
        position = int(position)
    except ValueError:
        raise ArgumentError(
            f"position={position}: must be an integer (a word's index, from 0)"
        ) from None
    check_start(start)
    lm = LanguageModel.from_checkpoint(ckpt, device=device)
    return lm.substitutes([str(text).split()], [position], k=k, start=start)[0]


def table(result: Substitutes) -> str:
    """The three lists side by side, one rank a row: word and log-probability."""
    rows = [
        {
            "rank": rank + 1,
            **{
                name: f"{pairs[rank][0]} {pairs[rank][1]:.3f}"
                for name, pairs in (
                    ("forward", result.forward),
                    ("backward", result.backward),
                    ("both", result.both),
                )
            },
        }
        for rank in range(len(result.both))
    ]
    tokens = list(result.tokens)
    tokens[result.position] = f"[{tokens[result.position]}]"
    return " ".join(tokens) + "\n" + format_table(rows)


def main(argv: Sequence[str] | None = None) -> None:
    """``python substitutes.py key=value ...`` (``USAGE``): the table, then one JSON line."""
    with user_errors():
        args = parse_args(argv, DEFAULTS, USAGE)
        result = substitutes(**args)
        print(table(result))
        print(json.dumps(result.to_dict()))
