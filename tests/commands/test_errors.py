"""Every bad input we know of ends in one line and exit status 1; docs/ERRORS.md is this table,
under the usage lines of the commands (their modules' ``USAGE``).

``ELMO_WRITE_DOCS=1 pytest tests/commands/test_errors.py`` rewrites docs/ERRORS.md from the cases.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from elmo_lm.commands import embed, evaluate, export, plot, probe, word2vec
from elmo_lm.errors import user_errors
from elmo_lm.model.bilm import BiLM
from elmo_lm.training.config import check_composes, check_overrides
from elmo_lm.training.resume import resume_argv
from elmo_lm.training.run import train
from tests.helpers import ROOT

DOC = ROOT / "docs" / "ERRORS.md"
WRITE = "ELMO_WRITE_DOCS=1 pytest tests/commands/test_errors.py"
COMMANDS = {  # as the table names them
    "train.py": None,  # Hydra's command line: conf/ holds its keys
    "export.py": export,
    "evaluate.py": evaluate,
    "elmo-embed": embed,
    "elmo-word2vec": word2vec,
    "plot.py": plot,
    "probe.py": probe,
}


def _cases(tmp: Path, tiny_options, train_config) -> list[tuple[str, str, object]]:
    """(command, bad input, the call that must fail) for each bad input."""
    (tmp / "a_file").write_text("x\n")
    pair = tmp / "model"
    pair.mkdir()
    BiLM(tiny_options()).to_hdf5(pair / "options.json", pair / "weights.hdf5")
    whole = (pair / "weights.hdf5").read_bytes()
    (tmp / "cut").mkdir()
    (tmp / "cut" / "weights.hdf5").write_bytes(whole[: len(whole) // 2])
    (tmp / "cut" / "options.json").write_text((pair / "options.json").read_text())
    (tmp / "bad.ckpt").write_bytes(b"PK\x03\x04 half a checkpoint")
    (tmp / "bad_options.json").write_text("{not json")
    given = json.loads((pair / "options.json").read_text())
    given["lstm"]["projecton_dim"] = given["lstm"].pop("projection_dim")
    (tmp / "typo_options.json").write_text(json.dumps(given))
    given = json.loads((pair / "options.json").read_text())
    given["lstm"]["dim"] = str(given["lstm"]["dim"])
    (tmp / "string_options.json").write_text(json.dumps(given))
    (tmp / "corpus.txt.gz").write_bytes(gzip.compress(b"a b c\n" * 100))
    (tmp / "utf16.txt").write_bytes("a b c\n".encode("utf-16-le") * 100)
    (tmp / "binary.txt").write_bytes(b"a b c\n" + bytes(range(256)))
    (tmp / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp / "vocab.txt").write_text("a\nb\n")
    (tmp / "two.txt").write_text("a b c\nc b a\n")
    text = tmp / "input.txt"
    text.write_text("a b c\n")
    io = [f"input={text}", f"output={tmp / 'out.hdf5'}"]
    model = [f"options={pair / 'options.json'}", f"weights={pair / 'weights.hdf5'}"]
    (tmp / "empty").mkdir()
    empty = tmp / "empty"
    nowhere = "http://127.0.0.1:9"  # the discard port: refused, no internet reached

    def run_train(*overrides):
        return lambda: train(train_config(tmp, *overrides))

    def composes(*overrides):
        return lambda: check_composes(list(overrides), ROOT / "conf")

    def run_embed(*argv):
        return lambda: embed.main([*argv, "progress=false"])

    def run_word2vec(*argv):
        given = [f"data={text}", f"out={tmp / 'v.txt'}", "progress=false", *argv]
        return lambda: word2vec.main(list(dict((a.split("=")[0], a) for a in given).values()))

    def run_plot(*argv):
        return lambda: plot.main([f"out={tmp / 'c.png'}", *argv])

    def run_probe(*argv):
        return lambda: probe.main([f"model={pair}", "word2vec=none", *argv])

    def with_env(name, value, call):
        """``call`` with the environment variable ``name`` set to ``value``."""
        return lambda: mock.patch.dict(os.environ, {name: value})(call)()

    def run_export(*argv):
        return lambda: export.main(list(argv))

    def run_evaluate(*argv):
        return lambda: evaluate.main(list(argv))

    def without(package, call):
        """``call`` where ``import package`` fails, as when its extra is not installed."""
        modules = [m for m in sys.modules if m == package or m.startswith(package + ".")]
        blocked = {m: None for m in [package, *modules]}
        return lambda: mock.patch.dict(sys.modules, blocked)(call)()

    def without_cuda(call):
        """``call`` on a machine without CUDA, whatever this one has."""

        def run():
            with (
                mock.patch.object(torch.cuda, "is_available", return_value=False),
                mock.patch.object(torch.cuda, "device_count", return_value=0),
            ):
                call()

        return run

    runs = tmp / "runs_with_events"
    with SummaryWriter(str(runs / "tensorboard")) as writer:
        writer.add_scalar("val/ppl", 5.0, 1)
    missing_ckpt = f"ckpt={tmp / 'missing.ckpt'}"
    resumable = tmp / "run"  # a run directory: what its first run's command line was
    (resumable / ".hydra").mkdir(parents=True)
    (resumable / ".hydra" / "overrides.yaml").write_text(f"- data.train_files={text}\n")

    def resume(*argv):
        return lambda: resume_argv([f"ckpt_path={resumable}", *argv], ROOT / "conf")

    return [
        ("train.py", "data.batch_size=0", run_train("data.batch_size=0")),
        ("train.py", "data.unroll_steps=-1", run_train("data.unroll_steps=-1")),
        ("train.py", "data.valid_batch_size=0", run_train("data.valid_batch_size=0")),
        ("train.py", "data.num_workers=-2", run_train("data.num_workers=-2")),
        (
            "train.py",
            "model.char_cnn.max_characters_per_token=2",
            run_train("model.char_cnn.max_characters_per_token=2"),
        ),
        ("train.py", "model.lstm_dim=2048", lambda: check_overrides(["model.lstm_dim=2048"])),
        ("train.py", "+model.lstm.dimm=64", run_train("+model.lstm.dimm=64")),
        ("train.py", "trainer.max_epoch=1", composes("trainer.max_epoch=1")),
        ("train.py", "model=nope", composes("model=nope")),
        ("train.py", "+model.lstm=3", composes("+model.lstm=3")),
        ("train.py", "~model.nothing", composes("~model.nothing")),
        ("train.py", "trainer.max_epochs=[1", composes("trainer.max_epochs=[1")),
        ("train.py", "model=tiny,mini (without --multirun)", composes("model=tiny,mini")),
        ("train.py", "data.vocab_max_size=2", run_train("data.vocab_max_size=2")),
        ("train.py", "module.lr=0", run_train("module.lr=0")),
        ("train.py", "module.clip_norm=-1", run_train("module.clip_norm=-1")),
        ("train.py", "module.reset_state_prob=2", run_train("module.reset_state_prob=2")),
        ("train.py", "module.softmax=dense", run_train("module.softmax=dense")),
        ("train.py", "trainer.max_epochs=0", run_train("trainer.max_epochs=0")),
        ("train.py", "trainer.limit_train_batches=0", run_train("trainer.limit_train_batches=0")),
        (
            "train.py",
            "callbacks.periodic.every_n_train_steps=0",
            run_train("callbacks.periodic.every_n_train_steps=0"),
        ),
        (
            "train.py",
            "data.train_files=<missing file>",
            run_train(f"data.train_files={tmp / 'missing.txt'}"),
        ),
        (
            "train.py",
            "data.train_files=<gzip file>",
            run_train(f"data.train_files={tmp / 'corpus.txt.gz'}"),
        ),
        (
            "train.py",
            "data.train_files=<UTF-16 without a byte-order mark>",
            run_train(f"data.train_files={tmp / 'utf16.txt'}"),
        ),
        (
            "train.py",
            "data.vocab_file=<no <S>, </S>, <UNK>>",
            run_train(f"data.vocab_file={tmp / 'vocab.txt'}"),
        ),
        (
            "train.py",
            "trainer.devices=3 with a two-sentence corpus",
            run_train(f"data.train_files={tmp / 'two.txt'}", "trainer.devices=3"),
        ),
        (
            "train.py",
            "trainer.devices=2 data.num_workers=2 with a two-sentence corpus",
            run_train(
                f"data.train_files={tmp / 'two.txt'}", "trainer.devices=2", "data.num_workers=2"
            ),
        ),
        ("train.py", "ckpt_path=<missing file>", run_train(f"ckpt_path={tmp / 'missing.ckpt'}")),
        (
            "train.py",
            "ckpt_path=<truncated checkpoint>",
            run_train(f"ckpt_path={tmp / 'bad.ckpt'}"),
        ),
        ("train.py", "ckpt_path=last, no earlier run", run_train("ckpt_path=last")),
        (
            "train.py",
            "ckpt_path=<run dir> data.train_files=<another corpus>",
            resume(f"data.train_files={tmp / 'a_file'}"),
        ),
        ("train.py", "ckpt_path=<run dir> model=<another model>", resume("model=small")),
        ("train.py", "init_from=<missing file>", run_train(f"init_from={tmp / 'missing.hdf5'}")),
        ("train.py", "init_from=<not a published name>", run_train("init_from=smal")),
        (
            "train.py",
            "init_from=<truncated .hdf5>",
            run_train(f"init_from={tmp / 'cut' / 'weights.hdf5'}"),
        ),
        (
            "train.py",
            "paths.runs_dir=<under a file>",
            run_train(f"paths.output_dir={tmp / 'a_file' / 'run'}"),
        ),
        (  # out= in a directory of its own: tmp's vocab.txt would be an earlier export's
            "export.py",
            "ckpt=<missing file>",
            run_export(missing_ckpt, f"out={tmp / 'export' / 'w.hdf5'}"),
        ),
        (
            "export.py",
            "ckpt=<truncated checkpoint>",
            run_export(f"ckpt={tmp / 'bad.ckpt'}", f"out={tmp / 'export' / 'w.hdf5'}"),
        ),
        ("export.py", "out=<a directory>", run_export(f"ckpt={tmp / 'bad.ckpt'}", f"out={tmp}")),
        (
            "export.py",
            "out=<under a file>",
            run_export(f"ckpt={tmp / 'bad.ckpt'}", f"out={tmp / 'a_file' / 'w.hdf5'}"),
        ),
        (
            "export.py",
            "out=<an existing file>",
            run_export(f"ckpt={tmp / 'bad.ckpt'}", f"out={tmp / 'a_file'}"),
        ),
        ("export.py", "an unknown argument", run_export(f"ckpt={tmp / 'bad.ckpt'}", "output=x")),
        ("evaluate.py", "no ckpt=", run_evaluate(f"data={text}")),
        ("evaluate.py", "ckpt=<missing file>", run_evaluate(missing_ckpt, f"data={text}")),
        (
            "evaluate.py",
            "batch_size=64.5",
            run_evaluate(missing_ckpt, f"data={text}", "batch_size=64.5"),
        ),
        ("evaluate.py", "device=gpu", run_evaluate(missing_ckpt, f"data={text}", "device=gpu")),
        (
            "evaluate.py",
            "device=cuda <no CUDA here>",
            without_cuda(run_evaluate(missing_ckpt, f"data={text}", "device=cuda")),
        ),
        ("elmo-embed", "no model given", run_embed(*io)),
        ("elmo-embed", "model=<not a published name>", run_embed(*io, "model=smal")),
        ("elmo-embed", "model=<a directory without a model>", run_embed(*io, f"model={empty}")),
        ("elmo-embed", "model= and options=", run_embed(*io, "model=small", *model)),
        (
            "elmo-embed",
            "options=, weights= <URLs of no server>",
            run_embed(*io, f"options={nowhere}/o.json", f"weights={nowhere}/w.hdf5"),
        ),
        (
            "elmo-embed",
            "options=, weights= and ckpt=",
            run_embed(*io, *model, f"ckpt={tmp / 'bad.ckpt'}"),
        ),
        (
            "elmo-embed",
            "input=<missing file>",
            run_embed(f"input={tmp / 'missing.txt'}", io[1], *model),
        ),
        (
            "elmo-embed",
            "input=<not UTF-8>",
            run_embed(f"input={tmp / 'latin1.txt'}", io[1], *model),
        ),
        (
            "elmo-embed",
            "input=<gzip file>",
            run_embed(f"input={tmp / 'corpus.txt.gz'}", io[1], *model),
        ),
        (
            "elmo-embed",
            "options=<a misspelt key>",
            run_embed(*io, f"options={tmp / 'typo_options.json'}", model[1]),
        ),
        (
            "elmo-embed",
            'options=<"dim": "32">',
            run_embed(*io, f"options={tmp / 'string_options.json'}", model[1]),
        ),
        (
            "elmo-embed",
            "output=<in a missing directory>",
            run_embed(io[0], f"output={tmp / 'no' / 'out.hdf5'}", *model),
        ),
        ("elmo-embed", "output=<a directory>", run_embed(io[0], f"output={tmp}", *model)),
        (
            "elmo-embed",
            "weights=<truncated .hdf5>",
            run_embed(*io, model[0], f"weights={tmp / 'cut' / 'weights.hdf5'}"),
        ),
        (
            "elmo-embed",
            "options=<not JSON>",
            run_embed(*io, f"options={tmp / 'bad_options.json'}", model[1]),
        ),
        (
            "elmo-embed",
            "ckpt=<truncated checkpoint>",
            run_embed(*io, f"ckpt={tmp / 'bad.ckpt'}"),
        ),
        (
            "elmo-embed",
            "token_cache= without vocab=",
            run_embed(*io, *model, f"token_cache={tmp / 'c.hdf5'}"),
        ),
        ("elmo-embed", "mode=mix", run_embed(*io, *model, "mode=mix")),
        ("elmo-embed", "pool=sum", run_embed(*io, *model, "pool=sum")),
        ("elmo-embed", "batch_size=two", run_embed(*io, *model, "batch_size=two")),
        ("elmo-embed", "stateful=maybe", run_embed(*io, *model, "stateful=maybe")),
        ("elmo-embed", "device=gpu", run_embed(*io, *model, "device=gpu")),
        (
            "elmo-embed",
            "device=cuda:1 <no CUDA here>",
            without_cuda(run_embed(*io, *model, "device=cuda:1")),
        ),
        ("elmo-embed", "--options FILE (a flag)", run_embed(*io, "--options", str(tmp))),
        ("elmo-word2vec", "gensim not installed", without("gensim", run_word2vec())),
        ("elmo-word2vec", "data=<missing file>", run_word2vec(f"data={tmp / 'missing.txt'}")),
        ("elmo-word2vec", "architecture=glove", run_word2vec("architecture=glove")),
        ("elmo-word2vec", "min_count=<above every count>", run_word2vec("min_count=9")),
        ("elmo-word2vec", "data=<binary file>", run_word2vec(f"data={tmp / 'binary.txt'}")),
        ("plot.py", "matplotlib not installed", without("matplotlib", run_plot(f"run={runs}"))),
        ("plot.py", "run=<no events under it>", run_plot(f"run={pair}")),
        ("plot.py", "out=<a .jpgx file>", run_plot(f"run={runs}", f"out={tmp / 'c.jpgx'}")),
        ("plot.py", "metrics=<a tag not logged>", run_plot(f"run={runs}", "metrics=probe/wsd_x")),
        ("probe.py", "task=pos", run_probe("task=pos")),
        ("probe.py", "lemmas=<none in WordNet>", run_probe("lemmas=qwzx,zzyzx")),
        (
            "probe.py",
            "WORDNET_DIR=<empty directory>",
            with_env("WORDNET_DIR", str(empty), run_probe()),
        ),
        (
            "train.py",
            "+probe=wsd WORDNET_DIR=<empty directory>",
            with_env("WORDNET_DIR", str(empty), run_train("+probe=wsd", "trainer.max_steps=1")),
        ),
    ]


def _line(call, command: str) -> str:
    """The line the entry point prints for ``call``'s error (it must exit with status 1)."""
    try:
        with user_errors():
            call()
    except SystemExit as exc:
        assert isinstance(exc.code, str), f"{command}: exit {exc.code!r}, not a one-line error"
        return exc.code
    raise AssertionError(f"{command}: no error")


def _cell(text: str) -> str:
    return "`" + text.replace("|", "\\|") + "`"


def _table(tmp: Path, tiny_options, train_config) -> str:
    rows = [
        "# Errors a user can cause",
        "",
        "Every bad input below ends in one line on stderr and exit status 1, never a traceback.",
        f"Generated by `tests/commands/test_errors.py`; `{WRITE}`",
        "rewrites it, and the test fails when a message changes and this file does not.",
        "",
        "## The command lines",
        "",
        "Each command's `USAGE` in its module of `elmo_lm/commands/`, the line that ends its",
        "error for a malformed command line; `train.py` takes Hydra overrides of `conf/`.",
        "",
        "| command | module | usage |",
        "|---|---|---|",
    ]
    for command, module in COMMANDS.items():
        if module is not None:
            rows.append(f"| `{command}` | `{module.__name__}` | {_cell(module.USAGE)} |")
    rows += [
        "",
        "## The bad inputs",
        "",
        "`<tmp>` stands for the directory the files were in.",
        "",
        "| command | bad input | the line it prints |",
        "|---|---|---|",
    ]
    for command, bad, call in _cases(tmp, tiny_options, train_config):
        assert command in COMMANDS, command
        line = _line(call, command)
        assert "\n" not in line and "Traceback" not in line, line
        line = line.replace(str(tmp), "<tmp>").replace(str(ROOT), ".")
        rows.append(f"| `{command}` | `{bad}` | {_cell(line)} |")
    return "\n".join(rows) + "\n"


def test_every_bad_input_is_one_line_and_the_table_is_docs_errors(
    tiny_options, train_config, tmp_path, monkeypatch
):
    monkeypatch.setenv("ELMO_LM_CACHE", str(tmp_path / "cache"))
    table = _table(tmp_path, tiny_options, train_config)
    if os.environ.get("ELMO_WRITE_DOCS"):
        DOC.write_text(table)
    assert DOC.read_text() == table, f"docs/ERRORS.md is out of date: {WRITE}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ["train.py", "data.batch_size=0"],
        ["export.py", "ckpt=missing.ckpt"],
        ["evaluate.py", "data=x.txt"],
        ["evaluate.py", "ckpt=x.ckpt", "data=x.txt", "device=gpu"],
        ["embed.py", "input=in.txt", "output=out.hdf5"],
        ["word2vec.py", "data=missing.txt", "out=v.txt"],
        ["plot.py", "run=missing"],
    ],
)
def test_entry_points_print_one_line_and_exit_1(tmp_path, argv):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / argv[0]),
            *argv[1:],
            *(["hydra.run.dir=" + str(tmp_path / "run")] if argv[0] == "train.py" else []),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "error: " in result.stderr.strip().splitlines()[-1]
