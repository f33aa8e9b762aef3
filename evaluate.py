"""Held-out perplexity of a checkpoint: ``python evaluate.py ckpt=PATH data=FILE_OR_GLOB
[batch_size=64] [device=auto]``; prints forward, backward and mean perplexity as JSON."""

import json
import sys

from elmo_lm.commands.args import REQUIRED, parse_args
from elmo_lm.commands.evaluate import evaluate
from elmo_lm.errors import user_errors

USAGE = "python evaluate.py ckpt=PATH.ckpt data=FILE_OR_GLOB [batch_size=64] [device=auto]"
DEFAULTS = {"ckpt": REQUIRED, "data": REQUIRED, "batch_size": 64, "device": "auto"}


def main() -> None:
    with user_errors():
        args = parse_args(sys.argv[1:], DEFAULTS, USAGE)
        print(json.dumps(evaluate(**args), indent=2))


if __name__ == "__main__":
    main()
