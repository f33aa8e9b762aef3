"""``key=value`` arguments: values typed by their key's default, required keys, one-line errors;
every command's USAGE and DEFAULTS, and the scripts that run its ``main``."""

import importlib
import re
import sys

import pytest

from elmo_lm.commands.args import REQUIRED, ArgumentError, parse_args
from tests.helpers import ROOT

DEFAULTS = {
    "ckpt": REQUIRED,
    "data": REQUIRED,
    "vocab": None,
    "batch_size": 64,
    "stateful": False,
    "device": "auto",
}


def test_values_take_the_type_of_their_default():
    argv = [
        "ckpt=1e3",
        "data=[a.txt, b.txt]",
        "vocab=[v",
        "batch_size=8",
        "stateful=true",
        "device=0",
    ]
    assert parse_args(argv, DEFAULTS, "u") == {
        "ckpt": "1e3",  # a path is the text as written, not the number YAML reads
        "data": ["a.txt", "b.txt"],
        "vocab": "[v",  # not YAML: the text
        "batch_size": 8,
        "stateful": True,
        "device": "0",
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data=x"], "missing ckpt=...; usage: u"),
        (["ckpt=null", "data=x"], "missing ckpt=...; usage: u"),
        (["ckpt=c", "data=x", "batch_size=8.5"], "batch_size=8.5: must be an integer"),
        (["ckpt=c", "data=x", "batch_size=true"], "batch_size=true: must be an integer"),
        (["ckpt=c", "data=x", "stateful=1"], "stateful=1: must be true or false"),
        (
            ["ckpt=c", "data=x", "--vocab", "v"],
            "'--vocab': not a known key=value argument; usage: u",
        ),
        (["ckpt=c", "data=x", "vocabs=v"], "'vocabs=v': not a known key=value argument"),
    ],
)
def test_mistakes_are_one_line(argv, message):
    with pytest.raises(ArgumentError, match=re.escape(message)):
        parse_args(argv, DEFAULTS, "u")


COMMANDS = ["evaluate", "export", "embed", "word2vec", "plot", "prepare", "substitutes", "probe"]


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_module_has_one_usage_that_matches_its_defaults(name):
    """USAGE names every key of DEFAULTS, shows each default as it is, and starts with the
    command as typed; a malformed command line ends in that USAGE."""
    module = importlib.import_module(f"elmo_lm.commands.{name}")
    usage, defaults = module.USAGE, module.DEFAULTS
    assert usage.split()[:2] == ["python", f"{name}.py"] or usage.startswith(f"elmo-{name} ")
    shown = dict(re.findall(r"(\w+)=([^\s\[\]()]+)", usage))
    assert set(shown) == set(defaults), usage
    for key, default in defaults.items():
        if default is not None and default is not REQUIRED:
            written = str(default).lower() if isinstance(default, bool) else str(default)
            assert shown[key].split("|")[0] == written, (key, usage)
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == f"error: '--help': not a known key=value argument; usage: {usage}"


def test_the_top_level_scripts_and_the_console_scripts_run_the_module_mains():
    for name in COMMANDS:
        assert (ROOT / f"{name}.py").read_text() == (
            f'from elmo_lm.commands.{name} import main\n\nif __name__ == "__main__":\n    main()\n'
        )
    pyproject = (ROOT / "pyproject.toml").read_text()
    section = pyproject.split("[project.scripts]\n")[1].split("\n[")[0]
    scripts = dict(re.findall(r'^([\w-]+) = "([\w.:]+)"$', section, re.MULTILINE))
    assert scripts == {
        "elmo-embed": "elmo_lm.commands.embed:main",
        "elmo-word2vec": "elmo_lm.commands.word2vec:main",
        "elmo-prepare": "elmo_lm.commands.prepare:main",
    }


def test_none_reads_the_command_line(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["evaluate.py", "ckpt=c", "data=x"])
    assert parse_args(None, DEFAULTS, "u")["ckpt"] == "c"
