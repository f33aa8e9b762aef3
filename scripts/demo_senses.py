"""Draws docs/senses.png: a few WordNet lemmas' usage-example vectors, coloured by sense, from
the sense probe's data (``python probe.py task=wsd`` measures what the picture shows).

    python scripts/demo_senses.py                            # models/sample -> docs/senses.png
    python scripts/demo_senses.py --model runs/x/checkpoints/last.ckpt --out senses.png
    python scripts/demo_senses.py --lemmas bank,run --layer average

Each panel is one lemma: the target vectors of its examples (``--layer``: a layer number or
``average``) in two dimensions (the first two principal components of that lemma's vectors),
the ``--senses`` senses with the most examples, and the lemma's static vector (layer 0 of the
lemma alone, the same in every context) as a star. Needs WordNet (``apt-get install
wordnet-base``) and ``pip install -e ".[probe,plot]"``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elmo_lm.commands.plot import WordSenses, plot_senses  # noqa: E402
from elmo_lm.commands.probe import load_model  # noqa: E402
from elmo_lm.embedding.elmo import Elmo  # noqa: E402
from elmo_lm.embedding.probe_wsd import representations, static_vectors, target_layers  # noqa: E402
from elmo_lm.embedding.senses import example_tokenizer, parse_lemmas, read_sense_examples  # noqa: E402
from elmo_lm.errors import user_errors  # noqa: E402

LEMMAS = "carry,work,make,serve,leave,keep,line,play"  # many examples in several senses


def sense_panels(
    elmo: Elmo, lemmas: list[str], layer: str = "2", max_senses: int = 3, max_panels: int = 8
) -> list[WordSenses]:
    """One ``WordSenses`` per lemma (and part of speech) of ``lemmas`` kept by the probe, at
    most ``max_panels``: the ``layer`` vectors of the examples of its ``max_senses`` senses
    with the most examples."""
    cut, _ = example_tokenizer(elmo.tokenizer)
    data = read_sense_examples(cut, lemmas=lemmas)
    name = "average" if layer == "average" else f"layer_{layer}"
    reps = representations(target_layers(elmo.bilm, data.examples))
    if name not in reps:
        raise SystemExit(f"demo_senses: --layer {layer}: use average or 0..{len(reps) - 3}")
    static = static_vectors(elmo.bilm, data.examples)
    panels = []
    for key in data.lemmas:
        rows = [i for i, e in enumerate(data.examples) if e.key == key]
        counts = Counter(data.examples[i].sense for i in rows)
        kept = sorted(s for s, _ in counts.most_common(max_senses))
        rows = [i for i in rows if data.examples[i].sense in kept]  # in sense order
        labels = [f"{data.examples[i].sense}: {data.examples[i].synset}" for i in rows]
        word = f"{key[0]} ({'noun' if key[1] == 'n' else 'verb'})"
        panels.append(WordSenses(word, reps[name][rows], labels, static[rows[0]]))
    # the lemmas with the most examples in their kept senses, in the order given
    best = sorted(range(len(panels)), key=lambda k: -len(panels[k].senses))[:max_panels]
    return [panels[k] for k in sorted(best)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "sample"))
    parser.add_argument("--lemmas", default=LEMMAS, help="a comma list or a file")
    parser.add_argument("--layer", default="2", help="a layer number or average")
    parser.add_argument("--senses", type=int, default=3, help="senses per lemma")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "senses.png")
    args = parser.parse_args(argv)
    with user_errors():
        elmo = load_model(args.model)
        panels = sense_panels(elmo, parse_lemmas(args.lemmas), args.layer, args.senses)
        layer = "the mean of the layers" if args.layer == "average" else f"layer {args.layer}"
        path = plot_senses(
            panels,
            args.out,
            title=f"WordNet usage examples: ELMo vectors ({layer}) by sense, PCA per lemma; "
            "the star is the static vector (layer 0)",
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
