"""python prepare.py: key=value arguments, the report table, one-line errors."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from elmo_lm.commands.prepare import main

QUICK = ["workers=1", "buckets=2", "time_steps=0", "progress=false", "shards=2"]


def test_prepare_command_writes_corpus_and_report(tmp_path, capsys):
    (tmp_path / "a.txt.gz").write_bytes(
        gzip.compress(b"".join(b"Line %d, said he. Yes!\n" % (i % 40) for i in range(60)))
    )
    main([f"input={tmp_path}/*.gz", f"out={tmp_path}/out", "valid=4", "test=0.1", *QUICK])
    table = capsys.readouterr().out
    assert "duplicates dropped" in table and "suggested model" in table
    corpus = json.loads((tmp_path / "out/corpus.json").read_text())
    assert (
        corpus["report"]["sentences"].items() >= {"duplicates": 20, "valid": 4, "test": 4}.items()
    )
    assert corpus["tokenizer"] == {"name": "moses", "lang": "en", "normalize": "NFC"}
    assert corpus["train_files"] == ["train/part-00000.txt", "train/part-00001.txt"]
    assert (tmp_path / "out/train/part-00000.txt").read_text().split("\n")[0].endswith(" !")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["input=missing/*.txt"], "^error: input missing/\\*.txt: no such file"),
        (["input=IN", "valid=0.5x"], "valid=0.5x: a share below 1"),
        (["input=IN", "tokenizer=spacy"], "tokenizer 'spacy' is not one of"),
        (["input=IN", "format=pages"], "format=pages: use lines"),
        (["input=BIN"], "holds NUL bytes"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, capsys, args, match):
    (tmp_path / "in.txt").write_text("a b\nc d\n")
    (tmp_path / "bin.txt").write_bytes(b"\x7fELF\x00\x00\x01")
    paths = {"input=IN": f"input={tmp_path}/in.txt", "input=BIN": f"input={tmp_path}/bin.txt"}
    args = [paths.get(a, a) for a in args]
    with pytest.raises(SystemExit) as info:
        main([*args, f"out={tmp_path}/out", *QUICK])
    message = str(info.value)
    assert message.startswith("error: ") and "\n" not in message
    assert re.search(match, message), message
    assert not (tmp_path / "out").exists()
