"""The LightningDataModule: vocabulary, corpus size, and the train/validation data loaders."""

from __future__ import annotations

import logging
import os

import lightning as L
import torch
from torch.utils.data import DataLoader

from elmo_lm.data.corpus import (
    OOV_WARNING,
    PREPARE,
    UNTOKENIZED_SAMPLE_LINES,
    UNTOKENIZED_SHARE,
    CorpusError,
    CorpusStats,
    Files,
    PreparedCorpus,
    count_corpus,
    untokenized_share,
)
from elmo_lm.data.sharding import resolve_rank, steps_per_epoch
from elmo_lm.data.streams import HeldOutStreams, TrainStream
from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.errors import global_rank
from elmo_lm.formats.characters import MAX_CHARACTERS_PER_TOKEN
from elmo_lm.formats.tokenize import TokenizerSpec

log = logging.getLogger(__name__)


class ElmoDataModule(L.LightningDataModule):
    """Streams a sentence-per-line corpus as stateful truncated-BPTT batches (``data.streams``).

    Call ``setup()`` before building the model: it builds (or reads) the vocabulary and counts the
    training corpus, deterministically, so every DDP rank gets the same vocabulary; afterwards
    ``.vocab``, ``.n_train_tokens`` and ``.steps_per_epoch`` are available. The datasets shard
    themselves across ranks and workers, so the Trainer must not add a DistributedSampler: create
    it with ``use_distributed_sampler=False``.

    Args:
        train_files: training corpus: a path, a glob, or a list of them (None: ``corpus``'s).
        valid_files: held-out corpus in the same format; None for no validation (or
            ``corpus``'s).
        vocab_file: a vocabulary file to use; None builds one from ``train_files`` (or takes
            ``corpus``'s, where it has one).
        vocab_min_count: when building, keep tokens seen at least this often.
        vocab_max_size: when building, keep at most this many tokens (specials included).
        batch_size: rows per training batch, per rank (the original's 128 per GPU).
        unroll_steps: tokens per row per training batch (truncated BPTT length).
        valid_batch_size: held-out streams, in total over all ranks (the original's
            ``test()`` batch); held-out perplexity carries the LSTM state along each stream, so
            the number is the same on any number of devices.
        max_characters_per_token: char ids per token: the options' value, which ``train()``
            passes (``model.char_cnn.max_characters_per_token``, or the checkpoint's); None
            for a word-input LM, whose batches then carry vocabulary ids and no char ids.
        num_workers: data-loader workers per rank.
        shuffle_files: shuffle the order of the training files every epoch.
        shuffle_buffer: sentences held to shuffle the training order every epoch (0: none).
        seed: seeds the file order and the sentence shuffling.
        corpus: a prepared corpus directory (``prepare.py``, ``PreparedCorpus``): the files
            and vocabulary above that are None come from its ``corpus.json``, and
            ``.tokenizer`` is its tokenizer (None without a corpus, or where it records none).
    """

    def __init__(
        self,
        train_files: Files | None = None,
        valid_files: Files | None = None,
        vocab_file: str | None = None,
        vocab_min_count: int = 1,
        vocab_max_size: int | None = None,
        batch_size: int = 128,
        unroll_steps: int = 20,
        valid_batch_size: int = 64,
        max_characters_per_token: int | None = MAX_CHARACTERS_PER_TOKEN,
        num_workers: int = 0,
        shuffle_files: bool = True,
        shuffle_buffer: int = 100_000,
        seed: int = 0,
        corpus: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.corpus = PreparedCorpus.load(corpus) if corpus is not None else None
        self.tokenizer: TokenizerSpec | None = self.corpus.tokenizer if self.corpus else None
        if self.corpus is not None:
            given = {
                k: v
                for k, v in (("train_files", train_files), ("valid_files", valid_files))
                if v is not None
            }
            if vocab_file is not None:
                given["vocab_file"] = vocab_file
            if given:
                log.info(
                    "data.corpus=%s: %s given with it, used instead of its corpus.json's",
                    corpus,
                    ", ".join(f"data.{k}={_plain(v)}" for k, v in given.items()),
                )
            train_files = train_files if train_files is not None else self.corpus.train_files
            if valid_files is None and self.corpus.valid_files:
                valid_files = self.corpus.valid_files
            vocab_file = vocab_file if vocab_file is not None else self.corpus.vocab_file
        if train_files is None:
            raise CorpusError(
                "no training corpus: pass data.train_files=<files> or data.corpus=<the "
                f"directory of {PREPARE.format(dir='<dir>')}>"
            )
        # Hydra hands lists over as ListConfig: keep plain values.
        self.train_files = _plain(train_files)
        self.valid_files = _plain(valid_files) if valid_files is not None else None
        self.vocab_file = vocab_file
        self.vocab_min_count = vocab_min_count
        self.vocab_max_size = vocab_max_size
        self.batch_size = batch_size
        self.unroll_steps = unroll_steps
        self.valid_batch_size = valid_batch_size
        self.max_characters_per_token = max_characters_per_token
        self.num_workers = num_workers
        self.shuffle_files = shuffle_files
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.vocab: Vocabulary | None = None
        self.train_stats: CorpusStats | None = None

    def setup(self, stage: str | None = None) -> None:
        """Builds or reads the vocabulary and counts the training corpus (once; idempotent)."""
        if self.vocab is not None:
            return
        if self.vocab_file is None:
            vocab = Vocabulary.build(self.train_files, self.vocab_min_count, self.vocab_max_size)
            self.train_stats = vocab.stats
        else:
            vocab = Vocabulary.from_file(self.vocab_file)
            self.train_stats = count_corpus(self.train_files, vocab)
            if self.train_stats.oov_rate > OOV_WARNING:
                log.warning(
                    "%s covers only %.0f%% of the training tokens (the rest train as <UNK>): "
                    "is it this corpus's vocabulary? Leave data.vocab_file out to build one",
                    self.vocab_file,
                    100 * (1 - self.train_stats.oov_rate),
                )
        self.vocab = vocab
        if global_rank() == 0:
            self._warn_if_untokenized()

    def _warn_if_untokenized(self) -> None:
        """Warns when the start of the training corpus looks like raw text (``UNTOKENIZED_SHARE``):
        ``world.`` and ``world`` would train as two words, and the model's text would be cut
        differently from what is given to it later."""
        share = untokenized_share(self.train_files)
        if share <= UNTOKENIZED_SHARE:
            return
        files = self.train_files
        first = files if isinstance(files, str) else files[0]
        log.warning(
            "%s looks untokenized: %.1f%% of the tokens of its first sentences (up to %d) have "
            "punctuation attached (like 'world.' or 'Hello,'), which trains as other words than "
            "'world' and 'Hello'. Tokenize it first: %s, then train with data.corpus=<dir>",
            first,
            100 * share,
            UNTOKENIZED_SAMPLE_LINES,
            PREPARE.format(dir="<dir>").replace("<file>", str(first)),
        )

    @property
    def n_train_tokens(self) -> int:
        """Tokens of the training corpus without ``<S>``/``</S>`` (options.json's n_train_tokens)."""
        return self._stats().n_tokens

    @property
    def steps_per_epoch(self) -> int:
        """Training batches per rank per epoch, for the current world size."""
        return steps_per_epoch(
            self._stats().n_tokens_with_boundaries,
            self.batch_size,
            self.unroll_steps,
            self._rank()[1],
        )

    def train_dataloader(self) -> DataLoader:
        dataset = TrainStream(
            self.train_files,
            self._vocab(),
            self._stats().n_tokens_with_boundaries,
            batch_size=self.batch_size,
            seed=self.seed,
            shuffle_files=self.shuffle_files,
            shuffle_buffer=self.shuffle_buffer,
            **self._stream_settings(),
        )
        self._resume_position(dataset)
        return self._loader(dataset)

    def _resume_position(self, dataset: TrainStream) -> None:
        """Continues the epoch a restored Trainer stopped in (checkpoints saved mid-epoch)."""
        fit_loop = getattr(self.trainer, "fit_loop", None)
        if fit_loop is None or not fit_loop.restarting:
            return
        trainer = self.trainer
        epoch = trainer.current_epoch
        # A checkpoint saved at a batch's end counts it as processed, not yet completed.
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if 0 < done < dataset.steps_per_epoch:
            dataset.resume(epoch, done)
        else:
            dataset.set_epoch(epoch)

    def val_dataloader(self) -> DataLoader | list:
        if self.valid_files is None:
            return []
        dataset = HeldOutStreams(
            self.valid_files,
            self._vocab(),
            n_streams=self.valid_batch_size,
            num_workers=self.num_workers,
            **self._stream_settings(),
        )
        return self._loader(dataset)

    def _stream_settings(self) -> dict:
        """What the training and held-out streams of this rank are both built with."""
        rank, world_size = self._rank()
        return {
            "unroll_steps": self.unroll_steps,
            "max_characters_per_token": self.max_characters_per_token,
            "rank": rank,
            "world_size": world_size,
        }

    def _loader(self, dataset) -> DataLoader:
        # batch_size=None: the datasets yield whole batches.
        return DataLoader(
            dataset,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def _rank(self) -> tuple[int, int]:
        if self.trainer is not None:
            return self.trainer.global_rank, self.trainer.world_size
        return resolve_rank(None, None)

    def _vocab(self) -> Vocabulary:
        self.setup()
        return self.vocab

    def _stats(self) -> CorpusStats:
        self.setup()
        return self.train_stats


def _plain(files: Files) -> str | list[str]:
    if isinstance(files, str | os.PathLike):
        return os.fspath(files)
    return [os.fspath(f) for f in files]
