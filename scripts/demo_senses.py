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
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elmo_lm.commands.plot import WordSenses, plot_senses  # noqa: E402
from elmo_lm.commands.word2vec import train_word2vec  # noqa: E402
from elmo_lm.console import format_table  # noqa: E402
from elmo_lm.embedding.elmo import Elmo  # noqa: E402
from elmo_lm.embedding.word_vectors import WordVectors  # noqa: E402
from elmo_lm.errors import MissingExtraError, UserError  # noqa: E402

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


@dataclass
class SenseVectors:
    """The vectors of every occurrence in ``found``, row i for occurrence i."""

    contextual: np.ndarray  # (n, D): the ELMo layer asked for
    static: np.ndarray  # (n, D): layer 0, the same for every occurrence of a word
    word2vec: np.ndarray | None  # (n, W): the word2vec vector, the same for every occurrence

    def with_word2vec(self) -> np.ndarray | None:
        """(n, D + W): ELMo with the word2vec vector appended, as ``Elmo(word_vectors=...)``
        returns it."""
        if self.word2vec is None:
            return None
        return np.concatenate([self.contextual, self.word2vec], axis=1)


def sense_vectors(
    elmo: Elmo, found, layer: str, word_vectors: WordVectors | None = None, batch_size: int = 64
) -> SenseVectors:
    """The ELMo, layer-0 and word2vec vectors of each occurrence."""
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
    w2v = None if word_vectors is None else word_vectors.embed([w for w, _, _, _ in found])
    return SenseVectors(np.stack(contextual), np.stack(static), w2v)


def sense_tables(
    found, vectors: SenseVectors
) -> tuple[list[dict], list[dict], list[dict], list[WordSenses]]:
    """The summary rows (one per word), the rows of each representation averaged over the
    words, the example rows (one query per sense), and each word's vectors for the plot."""
    combined = vectors.with_word2vec()
    summary, examples, plotted = [], [], []
    scores: dict[str, list[tuple[float, float, float]]] = {"elmo": [], "static": [], "both": []}
    for word in dict.fromkeys(w for w, _, _, _ in found):
        index = [i for i, item in enumerate(found) if item[0] == word]
        labels = [found[i][1] for i in index]
        if len(set(labels)) < 2:
            continue
        acc, within, across, neighbours = nearest_neighbour_rows(vectors.contextual[index], labels)
        _, s_within, s_across, _ = nearest_neighbour_rows(vectors.static[index], labels)
        # all static vectors are equal: a tie broken at random picks the same sense this often
        chance = float(np.mean([(labels.count(s) - 1) / (len(labels) - 1) for s in labels]))
        scores["elmo"].append((acc, within, across))
        scores["static"].append((chance, s_within, s_across))
        row = {
            "word": word,
            "senses": " / ".join(dict.fromkeys(labels)),
            "n": len(index),
            "ELMo 1-NN same sense": f"{acc:.2f}",
            "static 1-NN same sense": f"{chance:.2f} (chance)",
            "ELMo cos same/other": f"{within:.2f} / {across:.2f}",
            "static cos same/other": f"{s_within:.2f} / {s_across:.2f}",
        }
        if combined is not None:
            b_acc, b_within, b_across, _ = nearest_neighbour_rows(combined[index], labels)
            scores["both"].append((b_acc, b_within, b_across))
            row["ELMo+word2vec 1-NN"] = f"{b_acc:.2f}"
            row["ELMo+word2vec cos same/other"] = f"{b_within:.2f} / {b_across:.2f}"
        summary.append(row)
        plotted.append(
            WordSenses(word, vectors.contextual[index], labels, vectors.static[index[0]])
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
    names = {
        "elmo": f"ELMo ({vectors.contextual.shape[1]})",
        "static": "static: layer 0"
        + ("" if vectors.word2vec is None else " or word2vec (the same in every context)"),
        "both": f"ELMo + word2vec ({0 if combined is None else combined.shape[1]})",
    }
    overall = [
        {
            "vectors (dim)": names[key],
            "1-NN same sense": f"{np.mean([a for a, _, _ in rows]):.2f}",
            "cos same sense": f"{np.mean([w for _, w, _ in rows]):.2f}",
            "cos other sense": f"{np.mean([x for _, _, x in rows]):.2f}",
        }
        for key, rows in scores.items()
        if rows
    ]
    return summary, overall, examples, plotted


def word2vec_vectors(path: Path | None, corpus: Path) -> tuple[WordVectors | None, str]:
    """The word2vec vectors of ``path``, else trained on ``corpus`` here (needs gensim); and
    where they come from. ``path`` ``none``: no word2vec vectors."""
    if path is not None and str(path) == "none":
        return None, "none (--word2vec none)"
    if path is not None:
        return WordVectors.from_word2vec(path), str(path)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            trained = train_word2vec(corpus, Path(tmp) / "vectors.txt", workers=1, progress=False)
        except MissingExtraError as exc:
            return None, f"skipped: {exc}"
        vectors = WordVectors.from_word2vec(trained.path)
    shown = corpus.relative_to(ROOT) if corpus.is_relative_to(ROOT) else corpus
    how = f"trained here on {shown} (skip-gram, {trained.dim} dims, 5 epochs, min_count 5)"
    return vectors, how


def _layer_name(layer: str) -> str:
    return {"top": "top layer", "average": "mean of the layers"}.get(layer, f"layer {layer}")


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
    parser.add_argument(
        "--word2vec",
        type=Path,
        help="a word2vec file for the ELMo + word2vec columns; default: trained here on "
        "--word2vec-corpus (needs gensim: pip install -e '.[word2vec]'); none: leave them out",
    )
    parser.add_argument(
        "--word2vec-corpus", type=Path, default=ROOT / "data" / "sample" / "train.txt"
    )
    parser.add_argument(
        "--plot", type=Path, help="draw the vectors of each word in 2-D to this .png (or .svg)"
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
    try:
        word_vectors, origin = word2vec_vectors(args.word2vec, args.word2vec_corpus)
        vectors = sense_vectors(elmo, found, args.layer, word_vectors)
    except UserError as exc:
        sys.exit(f"demo_senses: {exc}")
    summary, overall, examples, plotted = sense_tables(found, vectors)
    if not summary:
        sys.exit(f"demo_senses: {args.corpus}: no word occurs in two senses; use a bigger corpus")
    print(f"ELMo layer: {args.layer}; static: layer 0 (the context-independent token embedding)")
    print(f"word2vec: {origin}\n")
    print(format_table(summary))
    print("\nAveraged over the words:\n")
    print(format_table(overall))
    print("\nOne occurrence per sense and its nearest neighbour by ELMo cosine:\n")
    print(format_table(examples))
    if args.plot:
        try:
            path = plot_senses(
                plotted,
                args.plot,
                title=f"ELMo vectors ({_layer_name(args.layer)}) by sense, PCA per word; "
                "the star is the static vector (layer 0)",
            )
        except UserError as exc:
            sys.exit(f"demo_senses: {exc}")
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
