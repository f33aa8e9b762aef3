"""Train an ELMo biLM: ``python train.py [overrides]``; see docs/TRAINING_GUIDE.md and conf/."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

# conf/ paths (the bundled corpus, runs/) are relative to this repository wherever we run from.
os.environ.setdefault("ELMO_LM_ROOT", str(Path(__file__).resolve().parent))

from elmo_lm.training.config import check_overrides  # noqa: E402
from elmo_lm.training.resume import resume_argv  # noqa: E402
from elmo_lm.training.run import train, user_errors  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    with user_errors():
        train(cfg)


if __name__ == "__main__":
    with user_errors():
        check_overrides(sys.argv[1:])  # renamed keys are one line, not Hydra's error
        # ckpt_path=<run dir> continues that run: its overrides, its directory.
        sys.argv[1:] = resume_argv(sys.argv[1:], Path(__file__).resolve().parent / "conf")
    main()
