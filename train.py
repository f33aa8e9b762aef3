"""Train an ELMo biLM: ``python train.py [overrides]``; see docs/TRAINING_GUIDE.md and conf/."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

# conf/ paths (the bundled corpus, runs/) are relative to this repository wherever we run from.
os.environ.setdefault("ELMO_LM_ROOT", str(Path(__file__).resolve().parent))

from elmo_lm.training.config import check_composes, check_overrides  # noqa: E402
from elmo_lm.training.resume import resume_argv  # noqa: E402
from elmo_lm.training.run import train, user_errors  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    with user_errors():
        train(cfg)


if __name__ == "__main__":
    conf = Path(__file__).resolve().parent / "conf"
    with user_errors():
        check_overrides(sys.argv[1:])  # renamed keys are one line, not Hydra's error
        check_composes(sys.argv[1:], conf)  # and so are Hydra's (HYDRA_FULL_ERROR=1: Hydra's)
        # ckpt_path=<run dir> continues that run: its overrides, its directory.
        sys.argv[1:] = resume_argv(sys.argv[1:], conf)
    main()
