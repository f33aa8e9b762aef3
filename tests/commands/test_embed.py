"""The embedding command: the HDF5 layout read back, blank and overlong lines, one-line errors."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from elmo_lm.commands.embed import EmbedFileError, embed_file, main
from elmo_lm.embedding.elmo import Elmo
from elmo_lm.model.bilm import BiLM
from tests.helpers import ROOT

LINES = [
    "The bank raised rates .",
    "",
    "I sat by the river bank .",
    "bank",
    "The bank raised rates .",
]


@pytest.fixture
def model(tiny_options, tmp_path):
    torch.manual_seed(0)
    bilm = BiLM(tiny_options()).eval()
    bilm.to_hdf5(tmp_path / "options.json", tmp_path / "weights.hdf5")
    return Elmo(bilm), tmp_path / "options.json", tmp_path / "weights.hdf5"


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("\n".join(LINES) + "\n")
    return path


@pytest.mark.parametrize("mode", ["all", "top", "average"])
def test_layout(model, corpus, tmp_path, mode):
    elmo, _, _ = model
    out = tmp_path / "out.hdf5"
    assert embed_file(elmo, corpus, out, mode=mode, batch_size=2, progress=False) == 5
    assert not (tmp_path / "out.hdf5.tmp").exists()
    expected = elmo.embed_sentences([line.split() for line in LINES], mode=mode)
    with h5py.File(out, "r") as f:
        assert sorted(f) == ["0", "1", "2", "3", "4", "sentence_to_index"]
        for i, line in enumerate(LINES):
            n = len(line.split())
            shape = (3, n, 16) if mode == "all" else (n, 16)
            assert f[str(i)].shape == shape and f[str(i)].dtype == np.float32
            np.testing.assert_allclose(f[str(i)][...], expected[i], atol=1e-5, rtol=0)
        index = json.loads(f["sentence_to_index"][0])
    assert index == {"The bank raised rates .": "0", "I sat by the river bank .": "2", "bank": "3"}


def test_overlong_lines_are_split(model, tmp_path):
    elmo, _, _ = model
    tokens = [f"w{i}" for i in range(10)]
    path = tmp_path / "long.txt"
    path.write_text(" ".join(tokens))
    embed_file(elmo, path, tmp_path / "out.hdf5", mode="all", max_tokens=4, progress=False)
    with h5py.File(tmp_path / "out.hdf5", "r") as f:
        got = f["0"][...]
    assert got.shape == (3, 10, 16)
    pieces = elmo.embed_sentences([tokens[:4], tokens[4:8], tokens[8:]], mode="all")
    np.testing.assert_allclose(got, np.concatenate(pieces, axis=1), atol=1e-5, rtol=0)


def test_command_line(model, corpus, tmp_path):
    _, options, weights = model
    out = tmp_path / "cli.hdf5"
    cache = tmp_path / "cache.hdf5"
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("The\nbank\nrates\n.\n")
    common = [
        f"input={corpus}",
        f"output={out}",
        f"options={options}",
        f"weights={weights}",
        "progress=false",
    ]
    main([*common, "mode=top"])
    with h5py.File(out, "r") as f:
        plain = f["2"][...]
    main([*common, "mode=top", f"vocab={vocab}", f"token_cache={cache}"])
    assert cache.is_file()  # written on the first use, read on the next
    main([*common, "mode=top", f"vocab={vocab}", f"token_cache={cache}", "batch_size=2"])
    with h5py.File(out, "r") as f:
        np.testing.assert_allclose(f["2"][...], plain, atol=1e-5, rtol=0)
    # the top-level entry point runs the same main
    result = subprocess.run(
        [sys.executable, str(ROOT / "embed.py"), *common, "mode=average", "device=cpu"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    with h5py.File(out, "r") as f:
        assert f["0"].shape == (5, 16)


def test_stateful_zero_start_reproduces_the_original_tools(elmo_fixtures, tmp_path):
    """``stateful=true warm_start=false``, the fixture's batches as consecutive lines: its top
    layers."""
    sentences = json.loads((elmo_fixtures / "sentences.json").read_text())
    lines = [sentences[k][i] for i in range(10) for k in range(3)]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    model = [f"options={elmo_fixtures / 'options.json'}"]
    model += [f"weights={elmo_fixtures / 'lm_weights.hdf5'}"]
    for warm_start in ("false", "true"):
        out = tmp_path / f"out_{warm_start}.hdf5"
        args = [f"input={tmp_path / 'in.txt'}", f"output={out}", *model, "progress=false"]
        main([*args, "mode=top", "stateful=true", "batch_size=3", f"warm_start={warm_start}"])
        with h5py.File(out, "r") as f:
            got = [f[str(line)][...] for line in range(30)]
        matches = []
        for k in range(3):
            with h5py.File(elmo_fixtures / f"lm_embeddings_{k}.hdf5", "r") as f:
                for i in range(10):
                    ref = f[str(i)][...]  # (2, n, P): forward top, backward top
                    expected = np.concatenate([ref[0], ref[1]], -1)
                    matches.append(np.allclose(got[3 * i + k], expected, atol=1e-5, rtol=0))
        assert all(matches) == (warm_start == "false")  # the default warm start differs


def test_one_line_errors(model, corpus, tmp_path, capsys):
    elmo, options, weights = model
    out = tmp_path / "out.hdf5"
    pair = [f"options={options}", f"weights={weights}"]

    def error(*argv):
        with pytest.raises(SystemExit) as exc:
            main([*argv, "progress=false"])
        message = str(exc.value.code)
        assert message.startswith("error: ") and "\n" not in message
        return message

    assert "input file not found" in error(f"input={tmp_path / 'nope.txt'}", f"output={out}", *pair)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert "input file is empty" in error(f"input={empty}", f"output={out}", *pair)
    assert "weights file not found" in error(
        f"input={corpus}", f"output={out}", pair[0], f"weights={tmp_path / 'nope.hdf5'}"
    )
    other = json.loads(options.read_text())
    other["lstm"]["dim"] = 48
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert "use the options.json written with these weights" in error(
        f"input={corpus}", f"output={out}", f"options={tmp_path / 'other.json'}", pair[1]
    )
    given = [f"input={corpus}", f"output={out}"]
    no_model = "model=small (a published name, or a directory), options=OPTIONS.json weights="
    assert no_model in error(*given)
    assert no_model in error(*given, pair[0])
    assert "one way, not options= and ckpt=" in error(*given, *pair, f"ckpt={tmp_path / 'x.ckpt'}")
    assert "one way, not model= and options=" in error(*given, *pair, f"model={tmp_path}")
    assert "model=smal: no such file or directory, nor a published model" in error(
        *given, "model=smal"
    )
    assert "checkpoint not found" in error(*given, f"ckpt={tmp_path / 'x.ckpt'}")
    assert "missing input=..." in error(f"output={out}", *pair)
    # a flag is not a key=value argument: the line gives the usage
    assert "'--options': not a known key=value argument; usage: elmo-embed" in error(
        *given, "--options", str(options)
    )
    assert "mode 'mix' is not one of" in error(*given, *pair, "mode=mix")
    assert "batch_size=two: must be an integer" in error(*given, *pair, "batch_size=two")
    assert "stateful=maybe: must be true or false" in error(*given, *pair, "stateful=maybe")
    assert "device=gpu: not a device" in error(*given, *pair, "device=gpu")
    assert not out.exists() and not (tmp_path / "out.hdf5.tmp").exists()
    with pytest.raises(EmbedFileError, match="not one of"):
        embed_file(elmo, corpus, out, mode="mix", progress=False)


def test_lines_are_newline_separated_and_bad_bytes_name_the_file(tmp_path):
    from elmo_lm.commands.embed import EmbedFileError, read_lines

    path = tmp_path / "in.txt"
    path.write_bytes("a b\n\nc\u2028d\n".encode())
    assert read_lines(path) == ["a b", "", "c\u2028d"]  # U+2028 does not end a line
    path.write_bytes(b"fine\nalso fine\n\xff bad\n")
    with pytest.raises(
        EmbedFileError, match=rf"{path}: is not UTF-8 \(1 undecodable byte by line 3"
    ):
        read_lines(path)


def test_input_follows_the_text_policy_of_every_reader(model, tmp_path, caplog):
    """UTF-16 with its mark is read; gzip refused as the corpus readers refuse it; a trace of
    bad bytes is replaced, with one warning naming the file and the count."""
    import gzip
    import logging

    from elmo_lm.commands.embed import read_lines

    path = tmp_path / "in.txt"
    path.write_bytes("a b\n\nc é\n".encode("utf-16"))
    assert read_lines(path) == ["a b", "", "c é"]
    path.write_bytes(gzip.compress(b"a b\n" * 10))
    with pytest.raises(EmbedFileError, match=f"{path}: is gzip-compressed, not text"):
        read_lines(path)
    path.write_bytes(b"a b\n" * 500 + b"\xff c\n")
    with caplog.at_level(logging.WARNING):
        lines = read_lines(path)
    assert lines[-1] == "\ufffd c" and len(lines) == 501
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"{path}: 1 byte that is not UTF-8 (first on line 501)")
