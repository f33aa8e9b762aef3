"""``python substitutes.py``: the likeliest words at a position, a table then one JSON line, and
one-line errors for what a user can get wrong."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from elmo_lm.commands.substitutes import main
from tests.helpers import ROOT, write_tiny_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("substitutes") / "tiny.ckpt")


def test_prints_a_table_then_one_json_line(ckpt, capsys):
    main([f"ckpt={ckpt}", "text=w1 w2 w3 w4 w5", "position=2", "k=4", "device=cpu"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "w1 w2 [w3] w4 w5"
    assert [c.strip() for c in lines[1].split(" | ")] == ["rank", "forward", "backward", "both"]
    assert len(lines) == 1 + 2 + 4 + 1  # sentence, header and rule, 4 ranks, JSON
    result = json.loads(lines[-1])
    assert result["word"] == "w3" and result["position"] == 2
    for name in ("forward", "backward", "both"):
        assert len(result[name]) == 4
        assert not {"<S>", "</S>", "<UNK>"} & {w for w, _ in result[name]}


def test_the_script_runs(ckpt):
    done = subprocess.run(
        [sys.executable, "substitutes.py", f"ckpt={ckpt}", "text=w1 w2 w3", "position=0", "k=2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1])["word"] == "w1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["text=w1 w2", "position=2"], "error: position=2 is outside sentence 1 of 2 words"),
        (["text=w1 w2", "position=x"], "error: position=x: must be an integer"),
        # an empty or blank text is a missing one (parse_args); the API's message is tested in
        # tests/training/test_scorer.py
        (["text=  ", "position=0"], "error: missing text=...; usage: python substitutes.py"),
        (["text=w1", "position=0", "start=cold"], "error: start='cold': use one of zero, warm"),
    ],
)
def test_bad_input_is_one_line(ckpt, args, message):
    with pytest.raises(SystemExit) as exc:
        main([f"ckpt={ckpt}", "device=cpu", *args])
    assert str(exc.value.code).startswith(message) and "\n" not in str(exc.value.code)


def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00 not a checkpoint")
    with pytest.raises(SystemExit) as exc:
        main([f"ckpt={bad}", "text=w1 w2", "position=0", "device=cpu"])
    assert str(exc.value.code).startswith(f"error: {bad}: cannot be read as a checkpoint")
    assert "\n" not in str(exc.value.code)
