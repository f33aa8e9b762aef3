"""``key=value`` arguments: values typed by their key's default, required keys, one-line errors."""

import re

import pytest

from elmo_lm.commands.args import REQUIRED, ArgumentError, parse_args

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
