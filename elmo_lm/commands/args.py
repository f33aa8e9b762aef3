"""``key=value`` arguments, the one command-line style of ``train.py`` and of every command in
``elmo_lm.commands`` (each module's ``USAGE`` and ``DEFAULTS``, parsed by ``parse_args``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import yaml
from omegaconf import OmegaConf

from elmo_lm.errors import UserError


class ArgumentError(UserError):
    """A command line that names an unknown key, leaves out a required one or gives a value of
    the wrong type."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()
"""The default of a key the command line must give."""


def parse_args(argv: Sequence[str] | None, defaults: dict, usage: str) -> dict:
    """``key=value`` arguments (``None``: ``sys.argv[1:]``) over ``defaults``.

    A value takes the type of its key's default: ``true``/``false`` where the default is a bool,
    an integer where it is an int; everything else (paths, names, defaults ``None`` or
    ``REQUIRED``) is the text as written, or a YAML list (``data=[a.txt,b.txt]``).

    Raises:
        ArgumentError: an unknown key, a value of the wrong type, or a ``REQUIRED`` key missing;
            one line, ending in ``usage`` where the command line is malformed.
    """
    given = {}
    for arg in sys.argv[1:] if argv is None else argv:
        key, sep, _ = arg.partition("=")
        if not sep or key not in defaults:
            raise ArgumentError(f"{arg!r}: not a known key=value argument; usage: {usage}")
        given[key] = _typed(arg, defaults[key])
    args = {**defaults, **given}
    missing = [k for k, v in args.items() if defaults[k] is REQUIRED and v in (REQUIRED, None)]
    if missing:
        raise ArgumentError(f"missing {', '.join(f'{k}=...' for k in missing)}; usage: {usage}")
    return args


def _typed(arg: str, default: object) -> object:
    """The value of ``key=value`` as the type of ``default``."""
    key, _, text = arg.partition("=")
    try:
        value = OmegaConf.to_container(OmegaConf.from_dotlist([arg]))[key]
    except yaml.YAMLError:  # not YAML, e.g. a file name starting with "["
        value = text
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ArgumentError(f"{arg}: must be true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ArgumentError(f"{arg}: must be an integer")
        return value
    if isinstance(value, list):
        return [str(v) for v in value]
    return None if value is None else text
