"""Export a checkpoint to the original ELMo files: ``python export.py ckpt=PATH
out=weights.hdf5``; ``options.json`` and ``vocab.txt`` are written beside the weights."""

import sys

from elmo_lm.commands.args import REQUIRED, parse_args
from elmo_lm.commands.export import export
from elmo_lm.errors import user_errors

USAGE = "python export.py ckpt=PATH.ckpt out=weights.hdf5"


def main() -> None:
    with user_errors():
        args = parse_args(sys.argv[1:], {"ckpt": REQUIRED, "out": "weights.hdf5"}, USAGE)
        paths = export(**args)
        for kind, path in paths.items():
            print(f"{kind}: {path}")
        model = paths["weights"].parent
        print(
            f'load it: Elmo.from_pretrained("{model}"), elmo-embed model={model} ..., '
            f"python train.py init_from={model} ..."
        )


if __name__ == "__main__":
    main()
