"""WordNet's usage examples as a word-sense dataset: each example of a noun or verb sense,
tokenized, with the place of the word it illustrates (``read_sense_examples``).

WordNet 3.0 is read from Debian's ``wordnet-base`` files (``/usr/share/wordnet``, or
``$WORDNET_DIR``) with nltk's ``WordNetCorpusReader`` (``pip install -e ".[probe]"``); nothing
is downloaded. A lemma's sense number is its synset's place in ``wn.synsets(lemma, pos)``
(among the synsets the lemma itself names: ``wn.lemmas``), counted from 1. An example counts
for a lemma when one of its tokens is the lemma or an inflection of it (WordNet's ``morphy``:
``banks``, ``ran``, ``saw`` for ``see``); the first such token is the target. Lemmas of several
words (``bank_account``) are left out: their examples hold them as several tokens.

``probe_wsd`` scores vectors of these targets by nearest neighbour.
"""

from __future__ import annotations

import functools
import io
import os
import random
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from elmo_lm.embedding.elmo import describe_tokenizer, text_tokenizer
from elmo_lm.errors import UserError, require
from elmo_lm.formats.tokenize import TokenizerSpec

DEFAULT_ROOT = "/usr/share/wordnet"
POS = ("n", "v")  # nouns and verbs, as the ELMo paper's WSD probe
FILES = ("data.noun", "data.verb", "index.noun", "index.verb", "noun.exc", "verb.exc")
"""The WordNet database files the probe needs (``wordnet-base`` ships them; ``lexnames``,
which nltk's reader also opens, is not among Debian's files and is supplied here)."""

LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
"""WordNet 3.0's lexicographer files in number order (lexnames(5WN))."""

SKIP_REASONS = (
    "target not found",  # no token of the example is the lemma or an inflection of it
    "duplicate example",  # the same tokens as an earlier example of the lemma
    "multiword lemma",
    "one sense left",  # the lemma's other senses have no usable example
    "no sense with two examples",  # so no query
)


WORDS_AND_PUNCTUATION = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")
"""Words (with inner hyphens and apostrophes: ``well-known``, ``don't``) and single
punctuation marks: how examples are cut for a model that recorded no tokenizer."""


class WordNetError(UserError):
    """WordNet's files are missing, or a lemma list that matches nothing."""


def split_punctuation(text: str) -> list[str]:
    """``"Don't run--you'll see."`` -> ``["Don't", "run", "-", "-", "you'll", "see", "."]``."""
    return WORDS_AND_PUNCTUATION.findall(text)


def example_tokenizer(recorded: TokenizerSpec | None) -> tuple[Callable[[str], list[str]], str]:
    """How to cut WordNet's examples for a model whose training text was cut by ``recorded``:
    the same tokenizer, or ``split_punctuation`` where the model recorded none; and its name."""
    if recorded is not None:
        return text_tokenizer(recorded), describe_tokenizer(recorded)
    return split_punctuation, "words and punctuation marks (the model recorded no tokenizer)"


@dataclass(frozen=True)
class SenseExample:
    """One usage example of one sense of a lemma, tokenized."""

    lemma: str
    pos: str  # "n" or "v"
    sense: int  # 1-based: the synset's place among the lemma's synsets
    synset: str  # e.g. "bank.n.02"
    tokens: tuple[str, ...]
    target: int  # the index in tokens of the lemma (or its inflection)

    @property
    def key(self) -> tuple[str, str]:
        """The lemma and its part of speech: nouns and verbs of one spelling are two lemmas."""
        return self.lemma, self.pos


@dataclass
class SenseData:
    """The examples of the lemmas kept, grouped by lemma, and what was left out and why."""

    examples: list[SenseExample]
    lemmas_examined: int = 0  # lemmas of two or more senses looked at
    skipped: Counter = field(default_factory=Counter)  # reason -> examples left out
    skipped_lemmas: Counter = field(default_factory=Counter)  # reason -> lemmas left out

    @property
    def lemmas(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys(e.key for e in self.examples))

    def counts(self) -> dict:
        """Plain counts for a report: lemmas, examples, queries, skipped examples by reason."""
        per_sense = Counter((e.key, e.sense) for e in self.examples)
        queries = sum(n for n in per_sense.values() if n >= 2)
        return {
            "lemmas": len(self.lemmas),
            "examples": len(self.examples),
            "queries": queries,
            "lemmas_examined": self.lemmas_examined,
            "skipped_examples": {r: self.skipped[r] for r in SKIP_REASONS if self.skipped[r]},
            "skipped_lemmas": {
                r: self.skipped_lemmas[r] for r in SKIP_REASONS if self.skipped_lemmas[r]
            },
        }


def wordnet_root(root: str | os.PathLike | None = None) -> Path:
    """The directory of WordNet's files: ``root``, else ``$WORDNET_DIR``, else Debian's.

    Raises:
        WordNetError: the directory lacks one of ``FILES``.
    """
    path = Path(root or os.environ.get("WORDNET_DIR") or DEFAULT_ROOT)
    missing = [name for name in FILES if not (path / name).is_file()]
    if missing:
        raise WordNetError(
            f"{path}: no WordNet database ({missing[0]} missing); apt-get install wordnet-base, "
            "or set WORDNET_DIR to a directory holding WordNet 3.0's dict files"
        )
    return path


def open_wordnet(root: str | os.PathLike | None = None):
    """nltk's WordNet reader over the files of ``wordnet_root(root)``, made once per directory.

    Raises:
        MissingExtraError: nltk is not installed.
        WordNetError: the files are missing.
    """
    path = wordnet_root(root)
    require("nltk", "probe", "reading WordNet")
    return _reader(str(path.resolve()))


@functools.lru_cache(maxsize=2)
def _reader(root: str):
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    path = Path(root)

    class DictFiles(WordNetCorpusReader):
        """The reader on a bare dict directory: ``lexnames`` from ``LEXNAMES`` where the
        directory has none, and no mapping to another WordNet version (nltk's own data)."""

        def open(self, file):
            if file == "lexnames" and not (path / file).is_file():
                pos = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
                lines = (f"{i:02d}\t{n}\t{pos[n.split('.')[0]]}" for i, n in enumerate(LEXNAMES))
                return io.StringIO("\n".join(lines) + "\n")
            return super().open(file)

        def map_wn(self, version="wordnet"):
            return None

    if str(path) not in map(str, nltk.data.path):
        nltk.data.path.append(str(path))  # nltk reads files only under its data path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available"
        return DictFiles(str(path), omw_reader=None)


def parse_lemmas(given: str | Sequence[str] | None) -> list[str] | None:
    """The lemmas of a ``lemmas=`` value: a file (one a line), a comma list or a list; None
    for None. Spaces in a lemma become ``_``, as WordNet writes them."""
    if given is None:
        return None
    if isinstance(given, str):
        path = Path(given)
        text = path.read_text(encoding="utf-8") if path.is_file() else given.replace(",", "\n")
        given = text.splitlines()
    return [w.strip().lower().replace(" ", "_") for w in given if w.strip()]


def read_sense_examples(
    cut: Callable[[str], list[str]],
    max_lemmas: int | None = None,
    seed: int = 0,
    lemmas: Sequence[str] | None = None,
    root: str | os.PathLike | None = None,
) -> SenseData:
    """The usage examples of WordNet's polysemous nouns and verbs, tokenized by ``cut``.

    A lemma (with its part of speech) is kept when two or more of its senses have an example
    holding it and one of them has two: the examples of such senses are the queries of the
    probe. Lemmas are examined in sorted order, or, with ``max_lemmas``, in an order shuffled
    by ``seed`` until ``max_lemmas`` are kept (a uniform sample, the same for the same seed).

    Args:
        cut: the tokenizer of the model probed (raw text -> tokens).
        max_lemmas: keep at most this many lemmas; None: all.
        seed: the sample's seed.
        lemmas: only these lemmas (each as noun and as verb).
        root: WordNet's directory (``wordnet_root``).

    Raises:
        MissingExtraError: nltk is not installed.
        WordNetError: no WordNet files, or ``lemmas`` of which none is kept.
    """
    wn = open_wordnet(root)
    names = _names(wn, lemmas)
    if max_lemmas is not None:
        random.Random(seed).shuffle(names)
    data = SenseData([])
    for lemma, pos in names:
        if max_lemmas is not None and len(data.lemmas) >= max_lemmas:
            break
        senses = wn.lemmas(lemma, pos)
        if len(senses) < 2:
            continue
        data.lemmas_examined += 1
        data.examples += _lemma_examples(wn, lemma, pos, senses, cut, data)
    if lemmas is not None and not data.examples:
        shown = ", ".join(lemmas[:3]) + (" ..." if len(lemmas) > 3 else "")
        raise WordNetError(
            f"lemmas={shown}: none is a WordNet noun or verb with two senses whose usage "
            "examples hold it; give other lemmas (e.g. lemmas=bank,run,play), or leave lemmas= out"
        )
    return data


def _names(wn, lemmas: Sequence[str] | None) -> list[tuple[str, str]]:
    if lemmas is not None:
        return [(lemma, pos) for lemma in dict.fromkeys(lemmas) for pos in POS]
    return sorted((lemma, pos) for pos in POS for lemma in wn.all_lemma_names(pos))


def _lemma_examples(wn, lemma: str, pos: str, senses, cut, data: SenseData) -> list[SenseExample]:
    """The usable examples of one lemma of two or more senses, counting in ``data`` what is
    left out."""
    texts = [
        (number, s.synset(), t) for number, s in enumerate(senses, 1) for t in s.synset().examples()
    ]
    if "_" in lemma:
        data.skipped["multiword lemma"] += len(texts)
        data.skipped_lemmas["multiword lemma"] += 1
        return []
    found, seen = [], set()
    for number, synset, text in texts:
        tokens = tuple(cut(text))
        target = find_target(wn, tokens, lemma, pos)
        if target is None:
            data.skipped["target not found"] += 1
        elif tokens in seen:
            data.skipped["duplicate example"] += 1
        else:
            seen.add(tokens)
            found.append(SenseExample(lemma, pos, number, synset.name(), tokens, target))
    per_sense = Counter(e.sense for e in found)
    reason = None
    if len(per_sense) < 2:
        reason = "one sense left"
    elif max(per_sense.values()) < 2:
        reason = "no sense with two examples"
    if reason is not None:
        data.skipped[reason] += len(found)
        data.skipped_lemmas[reason] += 1
        return []
    return found


def find_target(wn, tokens: Iterable[str], lemma: str, pos: str) -> int | None:
    """The index of the first token that is ``lemma`` or an inflection of it, or None."""
    for i, token in enumerate(tokens):
        if lemma in _base_forms(wn, token.lower(), pos):
            return i
    return None


@functools.lru_cache(maxsize=200_000)
def _base_forms_cached(wn, form: str, pos: str) -> frozenset[str]:
    # every analysis (``saw`` -> saw, see), where ``wn.morphy`` gives only the first
    analyses = wn._morphy(form, pos) if hasattr(wn, "_morphy") else [wn.morphy(form, pos)]
    return frozenset([form, *(a for a in analyses if a)])


def _base_forms(wn, form: str, pos: str) -> frozenset[str]:
    if not any(c.isalpha() for c in form):
        return frozenset([form])
    return _base_forms_cached(wn, form, pos)
