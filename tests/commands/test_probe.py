"""``python probe.py task=wsd``: the sense probe's table and JSON line on tiny models, where
word2vec comes from, the one-line errors, and the senses picture drawn from the probe's data."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from elmo_lm.commands.args import ArgumentError
from elmo_lm.commands.probe import TASKS, main, probe, run_corpus, word2vec_vectors
from elmo_lm.embedding.senses import WordNetError
from tests.helpers import (
    ROOT,
    one_line_error,
    png_size,
    require_wordnet,
    tiny_bilm,
    write_tiny_checkpoint,
)

LEMMAS = "lemmas=bank,run,play"
LAYERS = ["layer_0", "layer_1", "layer_2", "average", "concat"]


@pytest.fixture(scope="module")
def wordnet():
    return require_wordnet()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("probe") / "tiny.ckpt")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("exported")
    tiny_bilm().to_hdf5(out / "options.json", out / "weights.hdf5")
    return out


def test_prints_a_table_then_one_json_line(wordnet, ckpt, capsys):
    main([f"model={ckpt}", LEMMAS, "word2vec=none", "device=cpu"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [c.strip() for c in lines[0].split(" | ")] == ["vectors", "accuracy", "queries", "note"]
    rows = [line.split(" | ")[0].strip() for line in lines[2:11]]
    assert rows == [*LAYERS, "first_sense", "static", "untrained", "word2vec"]
    assert "left out (word2vec=none)" in lines[10]
    result = json.loads(lines[-1])
    assert set(result["wsd"]) == {*LAYERS, "first_sense", "static", "untrained"}
    assert result["wsd"]["static"] == result["wsd"]["first_sense"]
    counts = result["counts"]
    assert counts["lemmas"] >= 3 and counts["queries"] > 10
    assert counts["skipped_examples"]["target not found"] > 0
    assert any(line.startswith(f"{counts['lemmas']} lemmas") for line in lines)
    assert "words and punctuation marks" in "\n".join(lines)  # the model recorded no tokenizer


def test_word2vec_trained_on_the_corpus_given(wordnet, exported, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the bank of the river\nwe run to the bank\nthey play in the park\n" * 20)
    report = probe([f"model={exported}", LEMMAS, f"corpus={corpus}", "device=cpu"])
    assert 0 <= report.result["wsd"]["word2vec"] <= 1
    note = next(r["note"] for r in report.rows if r["vectors"] == "word2vec")
    assert note.startswith(f"trained here on {corpus}")


def test_word2vec_auto_reads_the_corpus_of_the_checkpoints_run(tmp_path, ckpt):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / ".hydra" / "config.yaml").write_text(
        "paths:\n  root: /data\ndata:\n  corpus: null\n  train_files: ${paths.root}/train.txt\n"
    )
    inside = run / "checkpoints" / "last.ckpt"
    inside.write_bytes(ckpt.read_bytes())
    assert run_corpus(str(inside)) == "/data/train.txt"
    assert run_corpus(str(ckpt)) is None  # not in a run's checkpoints/
    vectors, note = word2vec_vectors("auto", None, str(ckpt))
    assert vectors is None and note.startswith("skipped: the model's corpus is not known")


def test_the_task_table_names_each_task():
    assert list(TASKS) == ["wsd", "tag"]
    message = one_line_error(ArgumentError, lambda: probe(["model=x", "task=pos"]))
    assert message == "task=pos: use one of wsd, tag"


def test_a_lemma_list_that_matches_nothing_is_one_line(wordnet, exported):
    message = one_line_error(
        WordNetError, lambda: probe([f"model={exported}", "lemmas=qwzx,zzyzx", "word2vec=none"])
    )
    assert message.startswith("lemmas=qwzx, zzyzx: none is a WordNet noun or verb")


@pytest.mark.slow
def test_no_wordnet_is_one_line(exported, tmp_path):
    done = subprocess.run(
        [sys.executable, "probe.py", f"model={exported}", "word2vec=none"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "WORDNET_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path}: no WordNet database (data.noun missing); apt-get install "
        "wordnet-base, or set WORDNET_DIR to a directory holding WordNet 3.0's dict files"
    ]


def test_the_senses_picture_is_drawn_from_the_probes_data(wordnet, exported, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("demo", ROOT / "scripts" / "demo_senses.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    out = tmp_path / "senses.png"
    demo.main(["--model", str(exported), "--lemmas", "bank,run,play", "--out", str(out)])
    assert png_size(out) == (1200, 650)
    from elmo_lm.embedding.elmo import Elmo

    elmo = Elmo.from_files(exported / "options.json", exported / "weights.hdf5")
    panels = demo.sense_panels(elmo, ["bank", "play"], layer="average", max_senses=2)
    assert [p.word for p in panels] == ["bank (noun)", "play (noun)", "play (verb)"]
    for p in panels:
        assert len(set(p.senses)) == 2 and p.vectors.shape == (len(p.senses), 2 * 8)


def test_the_tagging_task_prints_train_and_dev_accuracy_per_layer(exported, capsys):
    tagged = ROOT / "tests" / "fixtures" / "text" / "en_tagged.conllu"
    main([f"model={exported}", "task=tag", f"train={tagged}", "device=cpu"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [c.strip() for c in lines[0].split(" | ")] == ["vectors", "train", "dev"]
    assert [line.split(" | ")[0].strip() for line in lines[2:8]] == [*LAYERS, "majority"]
    result = json.loads(lines[-1])
    assert set(result["tag"]) == {*LAYERS, "majority"}
    assert all(0.0 <= acc["dev"] <= 1.0 for acc in result["tag"].values())
    assert result["counts"]["sentences"]["dev"] >= 1


def test_the_tagging_task_without_a_train_file_is_one_line(exported):
    with pytest.raises(ArgumentError, match="task=tag needs train=FILE"):
        probe([f"model={exported}", "task=tag"])
