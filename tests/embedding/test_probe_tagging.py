"""The tagging probe: CoNLL-U (through the conllu package) and two-column files read, a linear
classifier per layer of a random tiny biLM, determinism, and one-line errors for bad files."""

import sys
from unittest import mock

import conllu
import pytest

from elmo_lm.embedding.elmo import Elmo
from elmo_lm.embedding.probe_tagging import (
    TaggingError,
    hold_out,
    is_conllu,
    read_tagged,
    tagging_probe,
)
from elmo_lm.errors import MissingExtraError
from tests.helpers import ROOT, one_line_error, tiny_bilm

TREEBANK = ROOT / "tests" / "fixtures" / "text" / "en_tagged.conllu"
LINES = TREEBANK.read_text(encoding="utf-8").split("\n")


def _write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_conllu_is_read_as_the_conllu_package_reads_it():
    sentences = read_tagged(TREEBANK)
    expected = [
        [(t["form"], t["upos"]) for t in s if isinstance(t["id"], int)]
        for s in conllu.parse(TREEBANK.read_text(encoding="utf-8"))
    ]
    assert [list(zip(*s)) for s in sentences] == expected
    assert len(sentences) == 12 and sum(len(s[0]) for s in sentences) == 158
    # the multiword token "cannot" (2-3) and the empty node 5.1 are left out
    assert sentences[10] == (
        ["You", "can", "not", "be", "serious", "!"],
        ["PRON", "AUX", "PART", "AUX", "ADJ", "PUNCT"],
    )
    assert sentences[11][0] == ["Twain", "wrote", "novels", "and", "Shakespeare", "plays", "."]
    assert read_tagged(TREEBANK, column="xpos")[0][1][:4] == ["DT", "NN", "VBZ", "DT"]


def test_two_column_files(tmp_path):
    sentences = read_tagged(TREEBANK)[:3]
    lines = []
    for tokens, tags in sentences:
        lines += [f"{token}\t{tag}" for token, tag in zip(tokens, tags)] + [""]
    path = _write(tmp_path, "tags.txt", ["", *lines, ""])  # blank lines around are fine
    assert not is_conllu(path) and is_conllu(TREEBANK)
    assert read_tagged(path) == sentences
    spaces = _write(tmp_path, "spaces.txt", ["The DET", "cat NOUN", "", "Dogs NOUN"])
    assert read_tagged(spaces) == [(["The", "cat"], ["DET", "NOUN"]), (["Dogs"], ["NOUN"])]


def test_hold_out_every_tenth_sentence():
    sentences = [([str(i)], ["X"]) for i in range(25)]
    train, dev = hold_out(sentences)
    assert [s[0][0] for s in dev] == ["9", "19"] and len(train) == 23
    assert hold_out(sentences[:3]) == (sentences[:2], sentences[2:3])


def test_the_probe_on_a_random_model():
    result = tagging_probe(Elmo(tiny_bilm()), TREEBANK, epochs=5, seed=0)
    assert list(result.accuracy) == [
        "layer_0",
        "layer_1",
        "layer_2",
        "average",
        "concat",
        "majority",
    ]
    for acc in result.accuracy.values():
        assert set(acc) == {"train", "dev"} and all(0.0 <= a <= 1.0 for a in acc.values())
    # even random vectors are told apart by a linear classifier: it memorises the train split
    majority = result.accuracy["majority"]["train"]
    assert majority == pytest.approx(26 / 149)  # NOUN
    assert result.accuracy["layer_2"]["train"] > majority + 0.15
    assert result.accuracy["concat"]["train"] > majority + 0.3
    assert result.counts == {
        "sentences": {"train": 11, "dev": 1},
        "tokens": {"train": 149, "dev": 9},
        "tags": 13,
        "dev_unseen": 1,  # INTJ, in the held-out sentence only
        "majority_tag": "NOUN",
    }
    assert result.to_dict() == {"tag": result.accuracy, "counts": result.counts}
    table = result.format()
    assert table.splitlines()[0].startswith("tagging probe (upos): 11 train sentences")
    assert "majority (NOUN)" in table and "1 dev tokens have a tag not in train" in table
    again = tagging_probe(Elmo(tiny_bilm()), TREEBANK, epochs=5, seed=0)
    assert again.to_dict() == result.to_dict()


def test_a_dev_file_and_the_xpos_column(tmp_path):
    dev = _write(tmp_path, "dev.conllu", LINES[: LINES.index("") + 1])  # the first sentence
    result = tagging_probe(Elmo(tiny_bilm()), TREEBANK, dev, column="xpos", epochs=1)
    assert result.column == "xpos" and result.dev == str(dev)
    assert result.counts["sentences"] == {"train": 12, "dev": 1}
    assert result.counts["tokens"] == {"train": 158, "dev": 26}
    assert result.counts["dev_unseen"] == 0


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("2 banker banker NOUN NN _ _ _ _ _", "Invalid line format"),
        ("x\tbanker\tbanker\tNOUN\tNN\t_\t_\t_\t_\t_", "Failed parsing field 'id'"),
        ("2\tbanker\tbanker\tNOUN", "4 columns where a CoNLL-U token line has 10"),
        ("2\tbanker\tbanker\t_\tNN\t_\t_\t_\t_\t_", "token 'banker' has no upos tag (_)"),
    ],
)
def test_a_malformed_conllu_line_is_named(tmp_path, line, says):
    assert LINES[5].startswith("2\tbanker")  # line 6 of the file
    path = _write(tmp_path, "bad.conllu", [*LINES[:5], line, *LINES[6:]])
    message = one_line_error(TaggingError, lambda: read_tagged(path))
    assert message.startswith(f"{path}:6: ") and says in message


def test_bad_files(tmp_path):
    three = _write(tmp_path, "three.txt", ["The\tDET", "cat\tNOUN\tNN"])
    message = one_line_error(TaggingError, lambda: read_tagged(three))
    assert message.startswith(f"{three}:2: 3 columns where a two-column file has 2")
    empty = _write(tmp_path, "empty.conllu", ["", ""])
    assert "holds no tagged tokens" in one_line_error(TaggingError, lambda: read_tagged(empty))
    missing = tmp_path / "missing.conllu"
    assert "file not found" in one_line_error(TaggingError, lambda: read_tagged(missing))
    assert "use one of upos, xpos" in one_line_error(
        TaggingError, lambda: read_tagged(TREEBANK, column="deprel")
    )
    one = _write(tmp_path, "one.txt", ["The\tDET"])
    message = one_line_error(TaggingError, lambda: tagging_probe(Elmo(tiny_bilm()), one))
    assert "one sentence" in message and "dev file" in message


def test_without_conllu():
    blocked = {m: None for m in sys.modules if m == "conllu" or m.startswith("conllu.")}
    with mock.patch.dict(sys.modules, blocked):
        message = one_line_error(MissingExtraError, lambda: read_tagged(TREEBANK))
    assert message == (
        'reading a CoNLL-U file needs conllu, which is not installed; pip install -e ".[probe]"'
    )
