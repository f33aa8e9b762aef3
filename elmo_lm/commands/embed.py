"""Embeds a file of sentences, one per line, into HDF5, as the original ELMo tools did:
``elmo-embed input=SENTENCES.txt output=OUT.hdf5 model=small`` (a published name, or a directory
holding options.json and the weights; or ``options=OPTIONS weights=WEIGHTS``, paths or URLs; or
``ckpt=CKPT``; the other keys are in ``DEFAULTS``).

Output layout (``dump_bilm_embeddings`` / ``allennlp elmo``): one dataset per input line named
``str(line_index)`` (0-based), holding (n_layers + 1, n_tokens, dim) for ``all`` and
(n_tokens, dim) for the other modes, float32; and ``sentence_to_index``, a (1,) string dataset
holding JSON that maps each sentence's text (the stripped line) to its dataset name. With
``pool=mean`` or ``max`` each line's dataset is its sentence vector instead, the token axis
pooled away (``elmo_lm.embedding.pooling``): (n_layers + 1, dim) for ``all``, (dim,) for the
other modes; the file's ``pool`` attribute says which.

Choices where the original tools differ or are silent:
    * Lines are cut into tokens as ``tokenize=`` says (``Elmo.embed_texts``): ``auto`` (the
      default) as the model's training text was (its ``tokenizer.json``, Moses for the published
      models; on whitespace for a model that recorded none), ``none`` on whitespace (the text is
      tokenized already), ``moses``. The command says in one line which it used; the file's
      ``tokenizer`` attribute records it (JSON), and where the lines were cut other than on
      whitespace a ``tokens`` dataset holds each line's tokens, space-separated.
    * A blank line keeps its place: its dataset has 0 tokens, e.g. (3, 0, 1024), so dataset
      ``str(i)`` is always line i. Blank lines are left out of ``sentence_to_index``.
    * A line longer than ``max_tokens`` is cut into pieces of ``max_tokens`` tokens, embedded
      separately (no context crosses a cut) and joined again: the dataset still has one vector
      per token of the line, and a pooled line is pooled over all of its tokens.
    * A blank line pools to zeros.
    * A sentence repeated on several lines maps to its first line in ``sentence_to_index``.
    * The output path is checked before any work (its directory exists and takes a file), and
      the file is written under a temporary name beside it and renamed when complete
      (``elmo_lm.formats.atomic``): a killed run leaves the old output or none, never half a file.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from elmo_lm.commands.args import REQUIRED, parse_args
from elmo_lm.commands.devices import parse_device
from elmo_lm.console import progress_bar
from elmo_lm.data.text import text_lines
from elmo_lm.embedding.elmo import (
    Elmo,
    ElmoError,
    choose_tokenizer,
    describe_tokenizer,
    text_tokenizer,
)
from elmo_lm.embedding.pooling import check_pool, pool_tokens
from elmo_lm.embedding.token_cache import TokenCache, TokenCacheError
from elmo_lm.embedding.word_vectors import WordVectors
from elmo_lm.errors import user_errors
from elmo_lm.formats.atomic import atomic_path, check_output_file
from elmo_lm.formats.pretrained import resolve

FILE_MODES = ("all", "top", "average", "concat")

USAGE = (
    "elmo-embed input=SENTENCES.txt output=OUT.hdf5 "
    "(model=small|medium|original|original-5.5b|DIR | options=OPTIONS.json weights=WEIGHTS.hdf5 "
    "| ckpt=CKPT) [mode=all|top|average|concat] [pool=none|mean|max] "
    "[tokenize=auto|none|moses] "
    "[batch_size=64] [max_tokens=512] [vocab=VOCAB.txt [token_cache=CACHE.hdf5]] "
    "[word_vectors=FILE] [stateful=false] [warm_start=true] [device=auto] [progress=true]"
)
DEFAULTS = {
    "input": REQUIRED,  # text file, one sentence per line
    "output": REQUIRED,  # the HDF5 file written: dataset str(i) for line i
    "model": None,  # a published name, or a directory holding options.json and the weights
    "options": None,  # with weights: an exported or published pair, paths or http(s) URLs
    "weights": None,
    "ckpt": None,  # or a checkpoint written by train.py
    "mode": "all",
    "pool": "none",  # mean or max: one vector per line, pooled over its tokens
    "tokenize": "auto",  # auto: the model's tokenizer; none: split on whitespace; moses
    "batch_size": 64,  # sentences per biLM call
    "max_tokens": 512,  # longer lines are embedded in pieces of this many tokens
    "vocab": None,
    "token_cache": None,
    "word_vectors": None,  # not with mode=all
    "stateful": False,  # carry the LSTM state between batches, in file order
    # false: sentences start from a zero state; with stateful=true, the original tools' vectors
    "warm_start": True,
    "device": "auto",
    "progress": True,  # a progress bar and a last line on stderr
}


class EmbedFileError(ElmoError):
    """An input file that cannot be embedded."""


def read_lines(path: str | os.PathLike) -> list[str]:
    """The stripped lines of a sentence-per-line file (blank lines kept), read as every command
    reads text (``elmo_lm.data.text``)."""
    path = Path(path)
    if not path.is_file():
        raise EmbedFileError(
            f"{path}: input file not found; pass a text file with one sentence per line"
        )
    # Lines end at "\n" only (as `wc -l` counts them), so dataset i is line i of the file.
    lines = [line.strip() for line in text_lines(path, EmbedFileError)]
    if not any(lines):
        raise EmbedFileError(f"{path}: the input file is empty; it needs one sentence per line")
    return lines


def embed_file(
    elmo: Elmo,
    input_file: str | os.PathLike,
    output_file: str | os.PathLike,
    mode: str = "all",
    batch_size: int = 64,
    max_tokens: int = 512,
    progress: bool | None = None,
    tokenize: str = "auto",
    pool: str = "none",
) -> int:
    """Embeds every line of ``input_file`` into ``output_file`` (layout in the module docstring).

    Args:
        elmo: the embedder (its word vectors and token cache, if any, are used).
        mode: ``all``, ``top``, ``average`` or ``concat`` (see ``elmo.MODES``).
        batch_size: sentences per biLM call; lines are batched by length in chunks of
            ``16 * batch_size`` lines (a stateful biLM keeps the file's order).
        max_tokens: longer lines are cut into pieces of this many tokens.
        progress: show a progress bar on stderr; ``None``: when stderr is a terminal.
        tokenize: how lines are cut into tokens (``elmo.TOKENIZE``; ``choose_tokenizer``):
            ``auto`` as the model's training text, ``none`` on whitespace, ``moses``.
        pool: ``none`` (a vector per token), ``mean`` or ``max`` (one per line; ``POOLS``).

    Returns:
        The number of lines written.
    """
    check_mode_and_sizes(mode, batch_size, max_tokens)
    check_pool(pool)
    spec, _ = choose_tokenizer(tokenize, elmo.tokenizer)
    cut = text_tokenizer(spec)
    lines = read_lines(input_file)
    output = check_output_file(output_file, "output")
    sentence_to_index: dict[str, str] = {}
    tokens: list[str] = []  # each line's tokens, where not cut on whitespace
    chunk = 16 * batch_size
    with atomic_path(output) as tmp:
        with (
            h5py.File(tmp, "w") as f,
            progress_bar(len(lines), "elmo-embed", "sent", progress) as bar,
        ):
            for start in range(0, len(lines), chunk):
                texts = lines[start : start + chunk]
                sentences = [cut(t) for t in texts]
                vectors = _embed_lines(elmo, sentences, mode, batch_size, max_tokens)
                vectors = [pool_tokens(v, pool) for v in vectors]
                for i, (text, array) in enumerate(zip(texts, vectors, strict=True), start=start):
                    f.create_dataset(str(i), data=array)
                    if text:
                        sentence_to_index.setdefault(text, str(i))
                if spec.name != "whitespace":
                    tokens.extend(" ".join(s) for s in sentences)
                bar.update(len(texts))
            index = f.create_dataset("sentence_to_index", (1,), dtype=h5py.string_dtype())
            index[0] = json.dumps(sentence_to_index)
            f.attrs["tokenizer"] = json.dumps(spec.to_dict())
            f.attrs["pool"] = pool
            if tokens:
                f.create_dataset("tokens", data=tokens, dtype=h5py.string_dtype())
    return len(lines)


def check_mode_and_sizes(mode: str, batch_size: int, max_tokens: int) -> None:
    """Raises ``EmbedFileError`` for a mode or size ``embed_file`` cannot use."""
    if mode not in FILE_MODES:
        raise EmbedFileError(f"mode {mode!r} is not one of {', '.join(FILE_MODES)}")
    if max_tokens < 1 or batch_size < 1:
        raise EmbedFileError("batch_size and max_tokens must be at least 1")


def _embed_lines(
    elmo: Elmo, sentences: list[list[str]], mode: str, batch_size: int, max_tokens: int
) -> list[np.ndarray]:
    """One array per sentence; overlong sentences go in pieces and are joined on the token axis."""
    pieces, owner = [], []
    for i, tokens in enumerate(sentences):
        for start in range(0, max(len(tokens), 1), max_tokens):
            pieces.append(tokens[start : start + max_tokens])
            owner.append(i)
    arrays = elmo.embed_sentences(pieces, mode=mode, batch_size=batch_size)
    grouped: list[list[np.ndarray]] = [[] for _ in sentences]
    for i, array in zip(owner, arrays, strict=True):
        grouped[i].append(array)
    # the token axis is the second to last in every mode: (L + 1, n, D) or (n, D)
    return [g[0] if len(g) == 1 else np.concatenate(g, axis=-2) for g in grouped]


def load_elmo(
    model: str | None = None,
    options: str | None = None,
    weights: str | None = None,
    ckpt: str | None = None,
    vocab: str | None = None,
    token_cache: str | None = None,
    word_vectors: str | None = None,
    stateful: bool = False,
    warm_start: bool = True,
    device: str = "auto",
    progress: bool | None = None,
) -> Elmo:
    """The embedder of a ``model`` (a published name or a directory), of an ``options`` +
    ``weights`` pair (paths or URLs), or of a checkpoint (``ckpt``); see
    ``elmo_lm.formats.pretrained.resolve``.

    Args:
        vocab: a vocabulary file whose tokens skip the character CNN (a token cache).
        token_cache: the cache's file for ``vocab``: read if it exists, else built and written.
        word_vectors: a word2vec file whose vectors are appended to each token's.
        stateful, warm_start: as in ``Elmo.from_files``.
        device: ``auto`` (``cuda`` when there is one, else ``cpu``), ``cpu``, ``cuda``,
            ``cuda:N`` or ``mps`` (``elmo_lm.commands.devices.parse_device``).
        progress: progress bars for a download and for building the token cache; ``None``:
            when stderr is a terminal.

    Raises:
        ArgumentError: a device this machine does not have (checked first).
        ElmoError: no model, or two, given.
        TokenCacheError: ``token_cache`` without ``vocab``.
    """
    target = parse_device(device)
    given = [k for k, v in (("model", model), ("options", options), ("ckpt", ckpt)) if v]
    if len(given) > 1:
        raise ElmoError(
            f"give the model one way, not {' and '.join(k + '=' for k in given)}: "
            "model=NAME|DIR, options= with weights=, or ckpt="
        )
    if not given or (options is None) != (weights is None):
        raise ElmoError(
            "give the model as model=small (a published name, or a directory), "
            "options=OPTIONS.json weights=WEIGHTS.hdf5 (paths or URLs), or ckpt=CKPT"
        )
    if token_cache is not None and vocab is None:
        raise TokenCacheError(
            "token_cache= needs vocab=, the vocabulary file the cache rows follow"
        )
    kwargs = {"stateful": stateful, "warm_start": warm_start}
    if word_vectors is not None:
        kwargs["word_vectors"] = WordVectors.from_word2vec(word_vectors)
    if ckpt is not None:
        elmo = Elmo.from_checkpoint(ckpt, **kwargs)
    else:
        what = f"model={model}" if model else None
        options_file, weight_file = resolve(model or options, weights, progress, what)
        elmo = Elmo.from_files(options_file, weight_file, **kwargs)
    elmo.to(target)
    if vocab is not None:
        if token_cache is not None and Path(token_cache).is_file():
            cache = TokenCache.from_file(token_cache, vocab, elmo.max_chars)
        else:
            cache = TokenCache.build(elmo.bilm, vocab, progress=progress)
            if token_cache is not None:
                cache.save(token_cache)
        elmo.token_cache = cache.to(elmo.device)
    return elmo


def main(argv: Sequence[str] | None = None) -> None:
    """``elmo-embed key=value ...`` / ``python embed.py key=value ...`` (``USAGE``)."""
    with user_errors():
        args = parse_args(argv, DEFAULTS, USAGE)
        input_file, output_file = args.pop("input"), args.pop("output")
        keys = ("mode", "batch_size", "max_tokens", "progress", "tokenize", "pool")
        run = {key: args.pop(key) for key in keys}
        # mistakes in the command line before the model is read
        check_output_file(output_file, "output")
        check_mode_and_sizes(run["mode"], run["batch_size"], run["max_tokens"])
        check_pool(run["pool"])
        choose_tokenizer(run["tokenize"], None)
        elmo = load_elmo(**args, progress=run["progress"])
        spec, why = choose_tokenizer(run["tokenize"], elmo.tokenizer)
        print(f"tokenize={run['tokenize']}: {describe_tokenizer(spec)} ({why})", file=sys.stderr)
        n = embed_file(elmo, input_file, output_file, **run)
    if run["progress"]:
        print(f"wrote {n} sentences to {output_file}", file=sys.stderr)
