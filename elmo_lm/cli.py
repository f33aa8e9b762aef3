"""``key=value`` arguments, the one command-line style of ``train.py``, ``evaluate.py`` and
``export.py``."""

from __future__ import annotations

from omegaconf import OmegaConf

from elmo_lm.errors import UserError


class ArgumentError(UserError):
    """A command line that names an unknown key or leaves out a required one."""


def parse_args(argv: list[str], defaults: dict, usage: str) -> dict:
    """``key=value`` arguments over ``defaults``; values are typed as in YAML.

    Raises:
        ArgumentError: an unknown key, or a required one (default None) missing; one line
            ending in ``usage``.
    """
    given = {}
    for arg in argv:
        key, sep, _ = arg.partition("=")
        if not sep or key not in defaults:
            raise ArgumentError(f"{arg!r}: not a known key=value argument; usage: {usage}")
        given.update(OmegaConf.to_container(OmegaConf.from_dotlist([arg])))
    args = {**defaults, **given}
    missing = [k for k, v in args.items() if v is None]
    if missing:
        raise ArgumentError(f"missing {', '.join(f'{k}=...' for k in missing)}; usage: {usage}")
    return args
