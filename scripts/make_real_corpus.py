"""Builds a small real-English corpus from the Debian `fortunes` package, fully offline.

Each fortune (the text between lines holding only ``%``) loses its indented attribution lines
(``-- Author``) and its overstriking, and is dropped when it looks like ASCII art, code or a table
rather than prose: under 70% letters, over 10% code characters, or over 30% of its lines under
half letters. The files ``ascii-art`` and ``translate-me`` (Latin) are skipped whole; ``art`` is
prose about art and stays. The rest is split into sentences, tokenized in the Penn Treebank /
1B-word style (punctuation split from words, ``don't`` -> ``do n't``, case kept), deduplicated
(exact token sequence; sentences of fewer than two words or over 120 tokens are dropped),
shuffled with a seed and split by sentence into train/valid/test: one sentence per line, tokens
separated by single spaces. The same seed gives the same files.

Usage: python scripts/make_real_corpus.py [--out data/fortunes] [--seed 0]
       [--valid-frac 0.05] [--test-frac 0.05] [--fortunes-dir /usr/share/games/fortunes]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

FORTUNES_DIR = Path("/usr/share/games/fortunes")
# Files that are not English prose: pictures, and Latin for translation ("art" is prose).
SKIP_FILES = {"ascii-art", "translate-me"}
MIN_LETTER_RATIO = 0.7  # letters / non-space characters of a prose fortune
MAX_SYMBOL_RATIO = 0.1  # code characters / non-space characters (IRC logs ~0.05; Lisp, C more)
CODE_CHARS = set("{}[]()<>;=*/\\|_#$^~+@")
MAX_ODD_LINES = 0.3  # fraction of a fortune's lines with letter ratio < 0.5 before it is art
MAX_SENTENCE_TOKENS = 120  # longer "sentences" are unpunctuated verse or lists

# Words whose final period belongs to them (and after which no sentence ends).
ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "rev", "gen", "col", "capt", "lt", "sgt",
    "gov", "sen", "rep", "hon", "mt", "ft", "vs", "etc", "inc", "ltd", "co", "corp", "vol",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}  # fmt: skip
UNICODE_PUNCT = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": " -- "}
)
_CLITICS = {"'s", "'m", "'d", "'re", "'ve", "'ll"}
EMOTICON = re.compile(r"(?<!\S)[:;]-?[()DPp](?!\S)")

# A sentence ends at . ! ? (and any closing quotes/brackets after it) before a capital or an
# opening quote (split_sentences skips "Mr. Smith", initials "J. Smith" and "e.g. Foo").
_SENTENCE_END = re.compile(r"""[.!?]+["')\]]*(?=\s+["'(\[`]*[A-Z0-9"'`])""")


def read_fortunes(path: Path) -> list[str]:
    """The fortunes of one file: text between lines holding only ``%``, overstriking removed."""
    text = path.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r".\x08", "", text)  # "_\bx" (underline) and "x\bx" (bold) -> "x"
    fortunes, lines = [], []
    for line in text.splitlines():
        if line.strip() == "%":
            fortunes.append("\n".join(lines))
            lines = []
        else:
            lines.append(line)
    fortunes.append("\n".join(lines))
    return [f for f in fortunes if f.strip()]


def _ratio(text: str, keep) -> float:
    """The fraction of the non-space characters of ``text`` for which ``keep`` holds."""
    chars = [c for c in text if not c.isspace()]
    return sum(map(keep, chars)) / len(chars) if chars else 0.0


def fortune_prose(fortune: str) -> str | None:
    """The fortune as one line of prose without its attribution, or None for art, code, tables."""
    # Attributions are indented ("\t\t-- Larry Wall in <...>"); an unindented "--" is a dash.
    lines = [ln for ln in fortune.splitlines() if not re.match(r"\s+--", ln) and ln.strip()]
    if not lines:
        return None
    odd = sum(_ratio(ln, str.isalpha) < 0.5 for ln in lines)
    text = " ".join(lines)
    if (
        _ratio(text, str.isalpha) < MIN_LETTER_RATIO
        or _ratio(text, CODE_CHARS.__contains__) > MAX_SYMBOL_RATIO
        or odd > MAX_ODD_LINES * len(lines)
    ):
        return None
    return " ".join(text.translate(UNICODE_PUNCT).split())


def _keeps_period(word: str) -> bool:
    """Whether ``word.`` is an abbreviation: listed, an initial (``J.``) or dotted (``U.S.``)."""
    return word.lower() in ABBREVIATIONS or (len(word) == 1 and word.isupper()) or "." in word


def split_sentences(text: str) -> list[str]:
    """Splits prose at . ! ? followed by a space and a capital, digit or opening quote.

    No split after an abbreviation (``Mr.``, ``etc.``), a single-letter initial (``J.``) or a
    dotted abbreviation (``e.g.``, ``U.S.``).
    """
    sentences, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        before = text[start : m.start()].split()
        word = before[-1].lstrip("\"'(`[") if before else ""
        if m.group().startswith(".") and _keeps_period(word):
            continue
        sentences.append(text[start : m.end()].strip())
        start = m.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def tokenize(text: str) -> list[str]:
    """Penn Treebank style tokens of one sentence.

    Splits ``, . ! ? ; : " ( ) [ ] { } < > $ % & @ #``, ``...``, ``--`` and quotes from words,
    and the clitics ``n't 's 'm 'd 're 've 'll``; keeps ``1,000``, ``7:30``, ``3.14``,
    abbreviations (``Mr.``, ``U.S.``) and emoticons (``:-)``) whole. Case is kept.

    Examples:
        >>> tokenize('"I don\\'t know," he said.')
        ['"', 'I', 'do', "n't", 'know', ',', '"', 'he', 'said', '.']
    """
    text = text.translate(UNICODE_PUNCT).replace("``", '"').replace("''", '"')
    emoticons = EMOTICON.findall(text)
    text = EMOTICON.sub(" \x00 ", text)  # placeholder, so ":-)" is not split below
    text = re.sub(r"\.\.\.+", " ... ", text)
    text = re.sub(r"--+", " -- ", text)
    text = re.sub(r'([;@#$%&?!"()\[\]{}<>`])', r" \1 ", text)
    text = re.sub(r"([,:])(?!\d)", r" \1 ", text)  # a comma/colon between digits stays
    text = re.sub(r"(?<!\d)([,:])", r" \1 ", text)
    text = re.sub(r"(?i)([a-z])(n't)\b", r"\1 \2", text)
    text = re.sub(r"(?i)([a-z])('s|'m|'d|'re|'ve|'ll)\b", r"\1 \2", text)
    tokens = []
    for tok in text.split():
        if tok == "\x00":
            tokens.append(emoticons.pop(0))
            continue
        trail = []
        while len(tok) > 1:
            if tok[-1] == "'" and tok.lower() not in _CLITICS:
                trail.insert(0, "'")  # a closing quote, or the possessive of "dogs'"
            elif tok[-1] == "." and not tok.endswith("...") and not _keeps_period(tok[:-1]):
                trail.insert(0, ".")
            else:
                break
            tok = tok[:-1]
        lead = []
        while len(tok) > 1 and tok[0] == "'" and tok.lower() not in _CLITICS:
            lead.append("'")  # an opening single quote
            tok = tok[1:]
        tokens += lead + [tok] + trail
    return tokens


def corpus_sentences(fortunes_dir: Path = FORTUNES_DIR) -> list[list[str]]:
    """Tokenized, deduplicated prose sentences of every fortune file, in file order."""
    files = sorted(
        p
        for p in fortunes_dir.glob("*")
        if p.is_file() and p.suffix not in {".dat", ".u8"} and p.name not in SKIP_FILES
    )
    if not files:
        sys.exit(
            f"error: no fortune files in {fortunes_dir}; install them with `apt-get install fortunes`"
        )
    seen, sentences = set(), []
    for path in files:
        for fortune in read_fortunes(path):
            prose = fortune_prose(fortune)
            if prose is None:
                continue
            for sentence in split_sentences(prose):
                tokens = tokenize(sentence)
                key = " ".join(tokens)
                # Keep sentences with words in them, not "--" or a lone number.
                n_words = sum(any(c.isalpha() for c in t) for t in tokens)
                if key in seen or n_words < 2 or len(tokens) > MAX_SENTENCE_TOKENS:
                    continue
                seen.add(key)
                sentences.append(tokens)
    return sentences


def split_corpus(
    sentences: list[list[str]], seed: int = 0, valid_frac: float = 0.05, test_frac: float = 0.05
) -> dict[str, list[list[str]]]:
    """Shuffles the sentences with ``seed`` and splits them into train/valid/test by count."""
    order = list(sentences)
    random.Random(seed).shuffle(order)
    n_valid, n_test = round(len(order) * valid_frac), round(len(order) * test_frac)
    return {
        "train": order[n_valid + n_test :],
        "valid": order[:n_valid],
        "test": order[n_valid : n_valid + n_test],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/fortunes"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--valid-frac", type=float, default=0.05)
    parser.add_argument("--test-frac", type=float, default=0.05)
    parser.add_argument("--fortunes-dir", type=Path, default=FORTUNES_DIR)
    args = parser.parse_args()
    if not (0 <= args.valid_frac and 0 <= args.test_frac and args.valid_frac + args.test_frac < 1):
        sys.exit("error: --valid-frac and --test-frac must be >= 0 and sum to less than 1")

    splits = split_corpus(
        corpus_sentences(args.fortunes_dir), args.seed, args.valid_frac, args.test_frac
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for name, sentences in splits.items():
        path = args.out / f"{name}.txt"
        path.write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf-8")
        n_tokens = sum(len(s) for s in sentences)
        n_types = len({t for s in sentences for t in s})
        print(f"{path}: {len(sentences)} sentences, {n_tokens} tokens, {n_types} distinct tokens")


if __name__ == "__main__":
    main()
