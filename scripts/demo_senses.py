"""Same word, different contexts: ELMo vectors separate word senses, a static vector cannot.

Usage (after ``python train.py`` and ``python export.py ckpt=... out=models/sample``):

    python scripts/demo_senses.py                       # models/sample/{options.json,weights.hdf5}
    python scripts/demo_senses.py --ckpt path/to/last.ckpt
    python scripts/demo_senses.py --options o.json --weights w.hdf5 --corpus data/sample/valid.txt

The ambiguous words, their senses and each sense's context words are read from the table in
``data/sample/README.md``; an occurrence of a word in the corpus is labelled with the sense
whose context words the sentence holds. For every occurrence we find its nearest neighbour
(cosine) among the other occurrences of the same word and check that it has the same sense.
The static vector is layer 0, the biLM's context-independent token embedding: it is the same
for every occurrence, so its nearest neighbour is a tie and it does no better than chance.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elmo_lm.elmo import Elmo  # noqa: E402
from elmo_lm.errors import UserError  # noqa: E402
from elmo_lm.tables import format_table  # noqa: E402

# word -> sense -> its context words
Senses = dict[str, dict[str, set[str]]]


def read_senses(readme: Path) -> Senses:
    """Parses the ``| word | sense | context words | example |`` table of the corpus README."""
    if not readme.is_file():
        sys.exit(
            f"demo_senses: {readme}: sense table not found; pass --senses data/sample/README.md"
        )
    senses: Senses = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] not in ("word", "") and not set(cells[0]) <= set("-: "):
            senses.setdefault(cells[0], {})[cells[1]] = set(cells[2].split())
    senses = {w: s for w, s in senses.items() if len(s) >= 2}
    if not senses:
        sys.exit(
            f"demo_senses: {readme}: no '| word | sense | context words |' rows with two senses"
        )
    return senses


def occurrences(
    corpus: Path, senses: Senses, per_sense: int
) -> list[tuple[str, str, list[str], int]]:
    """Up to ``per_sense`` (word, sense, sentence tokens, position) per sense, in corpus order.

    Repeated sentences are used once: an exact copy would be a trivially right neighbour.
    """
    if not corpus.is_file():
        sys.exit(f"demo_senses: {corpus}: corpus not found; pass --corpus, one sentence per line")
    found, counts = [], {}
    for line in dict.fromkeys(corpus.read_text(encoding="utf-8").splitlines()):
        tokens = line.split()
        context = set(tokens)
        for position, token in enumerate(tokens):
            if token not in senses:
                continue
            hits = {s: len(words & context) for s, words in senses[token].items()}
            best = max(hits.values())
            labels = [s for s, n in hits.items() if n == best]
            if best == 0 or len(labels) > 1 or counts.get((token, labels[0]), 0) >= per_sense:
                continue
            counts[(token, labels[0])] = counts.get((token, labels[0]), 0) + 1
            found.append((token, labels[0], tokens, position))
    return found


def nearest_neighbour_rows(
    vectors: np.ndarray, labels: list[str]
) -> tuple[float, float, float, list[int]]:
    """Leave-one-out 1-NN sense accuracy, mean cosine within / across senses, each row's neighbour."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    cos = unit @ unit.T  # (n, n)
    same = np.array(labels)[:, None] == np.array(labels)[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    np.fill_diagonal(cos, -np.inf)
    neighbours = cos.argmax(1).tolist()
    accuracy = float(np.mean([labels[i] == labels[j] for i, j in enumerate(neighbours)]))
    np.fill_diagonal(cos, 0.0)
    return accuracy, float(cos[same & off_diagonal].mean()), float(cos[~same].mean()), neighbours


def sense_tables(
    elmo: Elmo, found, layer: str, batch_size: int = 64
) -> tuple[list[dict], list[dict]]:
    """The summary rows (one per word) and example rows (one query per sense)."""
    layers = elmo.embed_sentences(
        [tokens for _, _, tokens, _ in found], mode="all", batch_size=batch_size
    )
    contextual, static = [], []
    for (_, _, _, position), array in zip(found, layers, strict=True):  # array (L + 1, n, D)
        if layer == "average":
            contextual.append(array[:, position].mean(0))
        else:
            contextual.append(array[-1 if layer == "top" else int(layer), position])
        static.append(array[0, position])
    summary, examples = [], []
    for word in dict.fromkeys(w for w, _, _, _ in found):
        index = [i for i, item in enumerate(found) if item[0] == word]
        labels = [found[i][1] for i in index]
        if len(set(labels)) < 2:
            continue
        acc, within, across, neighbours = nearest_neighbour_rows(
            np.stack([contextual[i] for i in index]), labels
        )
        _, s_within, s_across, _ = nearest_neighbour_rows(
            np.stack([static[i] for i in index]), labels
        )
        # all static vectors are equal: a tie broken at random picks the same sense this often
        chance = float(np.mean([(labels.count(s) - 1) / (len(labels) - 1) for s in labels]))
        summary.append(
            {
                "word": word,
                "senses": " / ".join(dict.fromkeys(labels)),
                "n": len(index),
                "ELMo 1-NN same sense": f"{acc:.2f}",
                "static 1-NN same sense": f"{chance:.2f} (chance)",
                "ELMo cos same/other": f"{within:.2f} / {across:.2f}",
                "static cos same/other": f"{s_within:.2f} / {s_across:.2f}",
            }
        )
        for sense in dict.fromkeys(labels):
            q = labels.index(sense)
            j = neighbours[q]
            examples.append(
                {
                    "word": word,
                    "sense": sense,
                    "sentence": " ".join(found[index[q]][2]),
                    "nearest (ELMo)": " ".join(found[index[j]][2]),
                    "its sense": labels[j],
                }
            )
    return summary, examples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=ROOT / "models" / "sample",
        help="holds options.json and weights.hdf5",
    )
    parser.add_argument("--options", type=Path, help="default: MODEL_DIR/options.json")
    parser.add_argument("--weights", type=Path, help="default: MODEL_DIR/weights.hdf5")
    parser.add_argument(
        "--ckpt", type=Path, help="a training checkpoint instead of the exported pair"
    )
    parser.add_argument("--corpus", type=Path, default=ROOT / "data" / "sample" / "valid.txt")
    parser.add_argument("--senses", type=Path, default=ROOT / "data" / "sample" / "README.md")
    parser.add_argument("--per-sense", type=int, default=40, help="occurrences per sense")
    parser.add_argument(
        "--layer", default="top", help="top, average, or a layer number (0 = static)"
    )
    args = parser.parse_args(argv)
    if args.layer not in ("top", "average") and not args.layer.isdigit():
        sys.exit(f"demo_senses: --layer {args.layer!r}: use top, average or a layer number")
    try:
        if args.ckpt:
            elmo = Elmo.from_checkpoint(args.ckpt)
        else:
            options = args.options or args.model_dir / "options.json"
            weights = args.weights or args.model_dir / "weights.hdf5"
            if not options.is_file() and args.options is None:
                sys.exit(
                    f"demo_senses: {options}: no trained model; train one (python train.py), export it "
                    f"(python export.py ckpt=... out={args.model_dir}) or pass --options/--weights or --ckpt"
                )
            elmo = Elmo.from_files(options, weights)
    except UserError as exc:
        sys.exit(f"demo_senses: {exc}")
    if args.layer.isdigit() and int(args.layer) >= elmo.bilm.n_representations:
        sys.exit(
            f"demo_senses: --layer {args.layer}: the model has layers 0..{elmo.bilm.n_representations - 1}"
        )
    found = occurrences(args.corpus, read_senses(args.senses), args.per_sense)
    summary, examples = sense_tables(elmo, found, args.layer)
    if not summary:
        sys.exit(f"demo_senses: {args.corpus}: no word occurs in two senses; use a bigger corpus")
    print(f"ELMo layer: {args.layer}; static: layer 0 (the context-independent token embedding)\n")
    print(format_table(summary))
    print("\nOne occurrence per sense and its nearest neighbour by ELMo cosine:\n")
    print(format_table(examples))


if __name__ == "__main__":
    main()
