"""Optional dependencies (``pip install -e ".[word2vec]"``, ``".[plot]"``), imported when first
needed, so that the package and its other commands work without them."""

from __future__ import annotations

import importlib
from types import ModuleType

from elmo_lm.errors import UserError


class MissingExtraError(UserError):
    """A command needs a library of an optional extra that is not installed."""


def require(module: str, extra: str, needed_for: str) -> ModuleType:
    """``import module``, or a one-line error naming the extra that installs it.

    Args:
        module: the module to import, e.g. ``gensim.models``.
        extra: the extra of ``pyproject.toml`` that installs it, e.g. ``word2vec``.
        needed_for: what needs it, e.g. ``training word2vec``.

    Raises:
        MissingExtraError: the module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        missing = (exc.name or "").split(".")[0] == package
        # else installed but broken (e.g. built against another numpy): say what failed
        why = "is not installed" if missing else f"cannot be imported ({exc})"
        raise MissingExtraError(
            f'{needed_for} needs {package}, which {why}; pip install -e ".[{extra}]"'
        ) from None
