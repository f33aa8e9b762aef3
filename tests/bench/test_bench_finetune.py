"""bench/bench_finetune.py: warm against cold fine-tuning of a tiny export, its table and JSON line,
the geometric means over seeds; and its target domain, ``scripts/make_real_corpus.py --source
wordnet``."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from elmo_lm.commands.export import export
from tests.helpers import ROOT, load_script, write_cyclic_corpus, write_tiny_checkpoint

bench = load_script("bench/bench_finetune.py")


def test_the_summary_is_per_step_with_geometric_means_over_seeds():
    results = {
        "warm": [{"ppl": {0: 10.0, 5: 4.0}, "warm_rows": [9, 12]}, {"ppl": {0: 40.0, 5: 9.0}}],
        "cold": [{"ppl": {0: 100.0, 5: 8.0}}, {"ppl": {0: 400.0, 5: 18.0}}],
    }
    rows, numbers = bench.summary(results, [0, 1])
    assert [r["step"] for r in rows] == [0, 5]
    assert rows[0]["warm (s0, s1)"] == "10.00 / 40.00" and rows[0]["warm geo-mean"] == "20.00"
    assert rows[0]["cold geo-mean"] == "200.00" and rows[0]["cold / warm"] == "10.000"
    assert rows[1]["warm geo-mean"] == "6.00" and rows[1]["cold / warm"] == "2.000"
    assert numbers["warm_geomean"] == pytest.approx([20.0, 6.0])
    assert numbers["cold"] == [[100.0, 8.0], [400.0, 18.0]] and numbers["warm_rows"] == [9, 12]


def test_a_model_without_a_softmax_is_refused(tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    export(ckpt, tmp_path / "model" / "weights.hdf5")
    with pytest.raises(SystemExit, match="no softmax beside .*; export it with softmax=true"):
        bench.model_copies(str(tmp_path / "model"), tmp_path / "work")


@pytest.mark.slow
def test_a_tiny_comparison_prints_the_table_and_one_json_line(tmp_path, capsys):
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    export(ckpt, tmp_path / "model" / "weights.hdf5", softmax=True)
    train = write_cyclic_corpus(tmp_path / "train.txt", 200)
    with open(train, "a") as f:
        f.write("w1 x1 w2 x2 w3\n" * 20)  # two tokens the export's vocabulary lacks
    valid = write_cyclic_corpus(tmp_path / "valid.txt", 30, offset=3)
    work = tmp_path / "work"
    bench.main(
        [
            f"--model={tmp_path / 'model'}",
            f"--train={train}",
            f"--valid={valid}",
            "--steps=4",
            "--every=2",
            "--seeds=1",
            "--batch-size=4",
            "--unroll=5",
            "--val-batches=2",
            "--hardware=cpu",
            "--threads=1",
            f"--work={work}",
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("4 x 5 tokens a step; 13 of 15 softmax rows start warm")
    assert out[1].split(" | ") == [
        "step",
        "warm (s0)",
        "cold (s0)",
        "warm geo-mean",
        "cold geo-mean",
        "cold / warm",
    ]
    result = json.loads(out[-1])
    assert result["steps"] == [0, 2, 4] and result["seeds"] == [0]
    assert result["warm_rows"] == [13, 15]
    table = [line.split(" | ") for line in out[3:-1]]
    assert [int(r[0]) for r in table] == [0, 2, 4]
    for row, warm, cold in zip(table, result["warm"][0], result["cold"][0], strict=True):
        assert float(row[1]) == pytest.approx(warm, abs=0.006)
        assert float(row[2]) == pytest.approx(cold, abs=0.006)
        assert float(row[5]) == pytest.approx(cold / warm, abs=6e-4)
    assert result["warm"][0][0] != result["cold"][0][0]  # step 0: the softmax is all they differ in
    assert all(math.isfinite(v) and v > 1 for v in result["warm"][0] + result["cold"][0])
    # the same vocabulary in both runs, the softmax only in the warm copy
    runs = work / "runs"
    vocabs = [(runs / f"{arm}-seed0" / "vocab.txt").read_text() for arm in ("warm", "cold")]
    assert vocabs[0] == vocabs[1]
    assert (work / "warm" / "weights_softmax_weights.hdf5").is_file()
    assert sorted(p.name for p in (work / "cold").iterdir()) == [
        "options.json",
        "vocab.txt",
        "weights.hdf5",
    ]


GLOSSES = [
    "an entity that has physical existence",
    'a living (or once living) entity; a thing that lives; "the oceans are teeming with life"; '
    '"what\'s done is done"- Anon.',
]
DATA_NOUN = (
    "  1 This software and database is being provided to you, the LICENSEE, by\n"
    "  2 Princeton University under the following license.\n"
    + "".join(f"0000{i}930 03 n 01 word{i} 0 000 | {gloss}  \n" for i, gloss in enumerate(GLOSSES))
)  # as WordNet's data files: the license indented, each synset's gloss after "| "


@pytest.mark.slow
def test_wordnet_glosses_become_a_prepared_corpus_of_definitions_and_examples(tmp_path):
    corpus = load_script("scripts/make_real_corpus.py")
    (tmp_path / "wn").mkdir()
    (tmp_path / "wn" / "data.noun").write_text(DATA_NOUN * 3)
    assert list(corpus.wordnet_lines(tmp_path / "wn"))[:5] == [
        "an entity that has physical existence",
        "a living (or once living) entity",
        "a thing that lives",
        "the oceans are teeming with life",
        "what's done is done",
    ]
    done = subprocess.run(
        [
            sys.executable,
            "scripts/make_real_corpus.py",
            "--source=wordnet",
            f"--wordnet-dir={tmp_path / 'wn'}",
            f"--out={tmp_path / 'out'}",
            "--workers=1",
            "--valid-frac=0.2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "out" / "train.txt").read_text() + (
        tmp_path / "out" / "valid.txt"
    ).read_text()
    assert sorted(text.splitlines()) == sorted(
        [
            "an entity that has physical existence",
            "a living ( or once living ) entity",
            "a thing that lives",
            "the oceans are teeming with life",
            "what 's done is done",
        ]
    )  # deduplicated, Moses-tokenized
    assert (
        json.loads((tmp_path / "out" / "corpus.json").read_text())["tokenizer"]["name"] == "moses"
    )
    missing = subprocess.run(
        [
            sys.executable,
            "scripts/make_real_corpus.py",
            "--source=wordnet",
            f"--wordnet-dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert missing.stderr.strip().endswith("install them with `apt-get install wordnet-base`")
