"""How raw text becomes tokens: the one tokenizer of the project, and the file naming it.

A ``TokenizerSpec`` (``tokenizer.json``, written in a prepared corpus and beside
``options.json`` by export) says which tokenizer made a model's tokens, so text given to the
model later is cut the same way. ``moses`` is sacremoses' port of the Moses ``tokenizer.perl``
that the 1B Word Benchmark (the published ELMo models' corpus) was tokenized with, HTML
escaping off (``'`` stays ``'``, ``&`` stays ``&``) and hyphens kept inside words
(``aggressive_dash_splits=False``: ``well-known`` is one token, as in the benchmark); English
clitics split Moses' way (``don't`` -> ``don`` ``'t``, ``John's`` -> ``John`` ``'s``).
``whitespace`` is for text that is tokenized already. Case is kept; the text is put in Unicode
normal form ``normalize`` (NFC by default, ``None`` keeps it as it is) before it is cut.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from elmo_lm.formats.atomic import write_text

TOKENIZERS = ("moses", "whitespace")
TOKENIZER_FILE = "tokenizer.json"  # written beside options.json by export, and in a prepared corpus
NORMAL_FORMS = ("NFC", "NFKC", "NFD", "NFKD")


@dataclass(frozen=True)
class TokenizerSpec:
    """Which tokenizer cut a corpus into tokens (``tokenizer.json``)."""

    name: str = "whitespace"
    """One of ``TOKENIZERS``."""
    lang: str = "en"
    """The Moses language code (its non-breaking prefixes and clitic rules); unused by
    ``whitespace``."""
    normalize: str | None = "NFC"
    """Unicode normal form applied before tokenizing; ``None`` keeps the text as it is."""

    def __post_init__(self) -> None:
        self.check()

    def check(self, source: str = "tokenizer") -> None:
        """Raises a one-line ``ValueError`` naming ``source`` for a value that cannot be."""
        if self.name not in TOKENIZERS:
            raise ValueError(
                f"{source}: tokenizer {self.name!r} is not one of {', '.join(TOKENIZERS)}"
            )
        if not isinstance(self.lang, str) or not self.lang:
            raise ValueError(f"{source}: lang {self.lang!r} must be a language code such as 'en'")
        if self.normalize is not None and self.normalize not in NORMAL_FORMS:
            raise ValueError(
                f"{source}: normalize {self.normalize!r} is not one of "
                f"{', '.join(NORMAL_FORMS)} or null (keep the text as it is)"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "") -> TokenizerSpec:
        """The spec of a parsed ``tokenizer.json``.

        Raises:
            ValueError: one line naming ``source`` and the unknown key or the bad value.
        """
        source = source or "tokenizer"
        if not isinstance(d, dict):
            raise ValueError(f"{source}: a tokenizer spec must be a JSON object, not {d!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"{source}: unknown tokenizer key {unknown[0]!r}; the keys are {', '.join(sorted(known))}"
            )
        spec = object.__new__(cls)  # check with the source's name before __post_init__ would
        for key in known:
            object.__setattr__(spec, key, d.get(key, getattr(cls, key)))
        spec.check(source)
        return spec

    def save(self, path: str | os.PathLike) -> None:
        """Writes ``tokenizer.json`` atomically."""
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> TokenizerSpec:
        """Reads a ``tokenizer.json``; a missing or unreadable file is a one-line ValueError."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{path}: tokenizer file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a valid JSON tokenizer file ({exc})") from None
        return cls.from_dict(data, source=str(path))


PUBLISHED = TokenizerSpec("moses", "en", "NFC")
"""What the published ELMo models were trained on (1B Word Benchmark, Moses-tokenized)."""


def make_tokenizer(spec: TokenizerSpec) -> Callable[[str], list[str]]:
    """A function from one sentence of raw text to its tokens, as ``spec`` says.

    ``moses``: ``"Hello, world."`` -> ``["Hello", ",", "world", "."]``, ``"don't"`` ->
    ``["don", "'t"]``; ``whitespace``: ``str.split()``. Both normalise first.
    """
    form = spec.normalize

    def normal(text: str) -> str:
        return unicodedata.normalize(form, text) if form is not None else text

    if spec.name == "whitespace":
        return lambda text: normal(text).split()
    from sacremoses import MosesTokenizer  # imported here: ~0.3 s, and only moses needs it

    moses = MosesTokenizer(lang=spec.lang)

    def tokenize(text: str) -> list[str]:
        text = normal(text)
        if not text.strip():
            return []
        # sacremoses keeps a space inside no token, but may leave an empty one at an edge
        return [t for t in moses.tokenize(text, escape=False, aggressive_dash_splits=False) if t]

    return tokenize


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "P"


def attached_punctuation(tokens: Iterable[str]) -> float:
    """The share of tokens that are letters with punctuation stuck to an end (``world.``,
    ``Hello,``, ``"Yes``): near 0 in tokenized text, a few percent or more in raw text.

    Tokens whose inner punctuation is part of the word (``U.S.``, ``e.g.``, ``don't``,
    ``well-known``) count only when the punctuation at the end follows a letter that is not
    itself after a dot (so ``U.S.`` and ``e.g.`` do not count, ``world.`` does).
    """
    n = attached = 0
    for token in tokens:
        n += 1
        if len(token) < 2 or not any(c.isalpha() for c in token):
            continue
        head, tail = token[0], token[-1]
        if _is_punct(head) and head not in "'-" and token[1].isalpha():
            attached += 1
        elif _is_punct(tail) and tail not in "'-" and token[-2].isalpha():
            # "U.S." and "e.g.": a dotted abbreviation keeps its dots
            if tail == "." and len(token) >= 3 and token[-3] == ".":
                continue
            attached += 1
    return attached / n if n else 0.0
