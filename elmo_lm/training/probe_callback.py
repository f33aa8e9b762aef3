"""A sense probe while the model trains: every few validations, the word-sense nearest-neighbour
accuracy of the biLM's layers on a fixed sample of WordNet lemmas, logged beside the perplexity
(``probe/wsd_layer0`` ... ``probe/wsd_average``; ``elmo_lm.embedding.probe_wsd``).

Opt in with ``python train.py +probe=wsd`` (``conf/probe/wsd.yaml``); it needs WordNet's files
(``apt-get install wordnet-base``) and nltk (``pip install -e ".[probe]"``).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import lightning as L
import torch

from elmo_lm.embedding.probe_wsd import probe_layers
from elmo_lm.embedding.senses import (
    SenseData,
    example_tokenizer,
    read_sense_examples,
    wordnet_root,
)
from elmo_lm.errors import TrainingError, require
from elmo_lm.formats.tokenize import TokenizerSpec

log = logging.getLogger(__name__)

PREFIX = "probe/"


def metric_name(representation: str) -> str:
    """``layer_1`` -> ``probe/wsd_layer1``, ``average`` -> ``probe/wsd_average``."""
    return f"{PREFIX}wsd_{representation.replace('_', '')}"


class SenseProbe(L.Callback):
    """Logs the biLM's word-sense accuracy per layer every ``every_n_validations``-th
    validation (sanity checks aside), from rank 0; the other ranks skip it.

    Args:
        every_n_validations: probe at the N-th, 2N-th, ... validation of the run.
        max_lemmas: the size of the lemma sample (``read_sense_examples``), read once at fit
            start.
        seed: the sample's seed: the same lemmas in every probe of the run.
        batch_size: examples per biLM call.
        wordnet_dir: WordNet's files; None: ``$WORDNET_DIR`` or ``/usr/share/wordnet``.
    """

    def __init__(
        self,
        every_n_validations: int = 1,
        max_lemmas: int = 100,
        seed: int = 0,
        batch_size: int = 64,
        wordnet_dir: str | os.PathLike | None = None,
    ) -> None:
        if every_n_validations < 1 or max_lemmas < 1 or batch_size < 1:
            raise TrainingError(
                "callbacks.probe: every_n_validations, max_lemmas and batch_size must be >= 1"
            )
        self.every_n_validations = every_n_validations
        self.max_lemmas = max_lemmas
        self.seed = seed
        self.batch_size = batch_size
        self.wordnet_dir = wordnet_dir
        self.validations = 0  # validations seen, sanity checks aside (kept in checkpoints)
        self.data: SenseData | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Every rank checks, so that all stop with the same line; rank 0 alone reads.
        wordnet_root(self.wordnet_dir)
        require("nltk", "probe", "the sense probe (callbacks.probe)")
        if not trainer.is_global_zero:
            return
        start = time.perf_counter()
        recorded = pl_module.hparams.get("tokenizer")
        cut, how = example_tokenizer(TokenizerSpec.from_dict(dict(recorded)) if recorded else None)
        self.data = read_sense_examples(cut, self.max_lemmas, self.seed, root=self.wordnet_dir)
        counts = self.data.counts()
        log.info(
            "sense probe: %d WordNet lemmas, %d examples, %d queries, tokenized as %s "
            "(read in %.1f s); every %d validation(s)",
            counts["lemmas"],
            counts["examples"],
            counts["queries"],
            how,
            time.perf_counter() - start,
            self.every_n_validations,
        )

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.validations += 1
        if self.validations % self.every_n_validations or not trainer.is_global_zero:
            return
        if self.data is None or not self.data.examples:
            return
        start = time.perf_counter()
        with torch.inference_mode(False), torch.no_grad():
            scores = probe_layers(pl_module.bilm, self.data, self.batch_size)
        for name in [n for n in scores if n.startswith("layer_")] + ["average"]:
            pl_module.log(metric_name(name), scores[name], rank_zero_only=True)
        log.debug("sense probe in %.2f s: %s", time.perf_counter() - start, scores)

    def state_dict(self) -> dict[str, Any]:
        return {"validations": self.validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.validations = int(state_dict.get("validations", 0))
