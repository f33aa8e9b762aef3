"""Embeds a file of sentences, one per line, into HDF5, as the original ELMo tools did.

Output layout (``dump_bilm_embeddings`` / ``allennlp elmo``): one dataset per input line named
``str(line_index)`` (0-based), holding (n_layers + 1, n_tokens, dim) for ``all`` and
(n_tokens, dim) for the other modes, float32; and ``sentence_to_index``, a (1,) string dataset
holding JSON that maps each sentence's text (the stripped line) to its dataset name.

Choices where the original tools differ or are silent:
    * Lines are split on whitespace; nothing else is tokenized.
    * A blank line keeps its place: its dataset has 0 tokens, e.g. (3, 0, 1024), so dataset
      ``str(i)`` is always line i. Blank lines are left out of ``sentence_to_index``.
    * A line longer than ``max_tokens`` is cut into pieces of ``max_tokens`` tokens, embedded
      separately (no context crosses a cut) and joined again: the dataset still has one vector
      per token of the line.
    * A sentence repeated on several lines maps to its first line in ``sentence_to_index``.
    * The output path is checked before any work (its directory exists and takes a file), and
      the file is written under a temporary name beside it and renamed when complete
      (``elmo_lm.atomic``): a killed run leaves the old output or none, never half a file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from elmo_lm.atomic import atomic_path, check_output_file
from elmo_lm.elmo import Elmo, ElmoError
from elmo_lm.errors import user_errors
from elmo_lm.token_cache import TokenCache, TokenCacheError
from elmo_lm.word_vectors import WordVectors

FILE_MODES = ("all", "top", "average", "concat")


class EmbedFileError(ElmoError):
    """An input file that cannot be embedded."""


def read_sentences(path: str | os.PathLike) -> list[str]:
    """The stripped lines of a UTF-8 sentence-per-line file (blank lines kept)."""
    path = Path(path)
    if not path.is_file():
        raise EmbedFileError(
            f"{path}: input file not found; pass a text file with one sentence per line"
        )
    # Lines end at "\n" only (as `wc -l` counts them), so dataset i is line i of the file.
    raw = path.read_bytes().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    lines = []
    for number, line in enumerate(raw, start=1):
        try:
            lines.append(line.decode("utf-8").strip())
        except UnicodeDecodeError as exc:
            raise EmbedFileError(
                f"{path}: line {number} is not UTF-8 (byte {exc.start} of the line); "
                "convert the file to UTF-8"
            ) from None
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
    progress: bool = True,
) -> int:
    """Embeds every line of ``input_file`` into ``output_file`` (layout in the module docstring).

    Args:
        elmo: the embedder (its word vectors and token cache, if any, are used).
        mode: ``all``, ``top``, ``average`` or ``concat`` (see ``elmo.MODES``).
        batch_size: sentences per biLM call; lines are batched by length in chunks of
            ``16 * batch_size`` lines (a stateful biLM keeps the file's order).
        max_tokens: longer lines are cut into pieces of this many tokens.
        progress: show a progress bar on stderr.

    Returns:
        The number of lines written.
    """
    if mode not in FILE_MODES:
        raise EmbedFileError(f"mode {mode!r} is not one of {', '.join(FILE_MODES)}")
    if max_tokens < 1 or batch_size < 1:
        raise EmbedFileError("batch_size and max_tokens must be at least 1")
    lines = read_sentences(input_file)
    output = check_output_file(output_file, "output")
    sentence_to_index: dict[str, str] = {}
    chunk = 16 * batch_size
    with atomic_path(output) as tmp:
        with (
            h5py.File(tmp, "w") as f,
            tqdm(total=len(lines), unit="sent", disable=not progress, desc="elmo-embed") as bar,
        ):
            for start in range(0, len(lines), chunk):
                texts = lines[start : start + chunk]
                vectors = _embed_lines(
                    elmo, [t.split() for t in texts], mode, batch_size, max_tokens
                )
                for i, (text, array) in enumerate(zip(texts, vectors, strict=True), start=start):
                    f.create_dataset(str(i), data=array)
                    if text:
                        sentence_to_index.setdefault(text, str(i))
                bar.update(len(texts))
            index = f.create_dataset("sentence_to_index", (1,), dtype=h5py.string_dtype())
            index[0] = json.dumps(sentence_to_index)
    return len(lines)


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


def load_elmo(args: argparse.Namespace) -> Elmo:
    """The embedder the command-line arguments describe."""
    kwargs = {"stateful": args.stateful, "warm_start": not args.zero_start}
    if args.word_vectors:
        kwargs["word_vectors"] = WordVectors.from_word2vec(args.word_vectors)
    if args.ckpt:
        elmo = Elmo.from_checkpoint(args.ckpt, **kwargs)
    elif args.options and args.weights:
        elmo = Elmo.from_files(args.options, args.weights, **kwargs)
    else:
        raise ElmoError(
            "give the model as --options OPTIONS.json --weights WEIGHTS.hdf5, or --ckpt CKPT"
        )
    elmo.to(args.device)
    if args.token_cache and not args.vocab:
        raise TokenCacheError(
            "--token-cache needs --vocab, the vocabulary file the cache rows follow"
        )
    if args.vocab:
        if args.token_cache and Path(args.token_cache).is_file():
            cache = TokenCache.from_file(args.token_cache, args.vocab, elmo.max_chars)
        else:
            cache = TokenCache.build(elmo.bilm, args.vocab)
            if args.token_cache:
                cache.save(args.token_cache)
        elmo.token_cache = cache.to(elmo.device)
    return elmo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elmo-embed",
        description="Embed a sentence-per-line file (whitespace-tokenized) into an HDF5 file of ELMo vectors.",
    )
    parser.add_argument("input", help="text file, one sentence per line")
    parser.add_argument("output", help="HDF5 file to write (dataset str(i) for line i)")
    model = parser.add_argument_group("model (an exported pair, or a training checkpoint)")
    model.add_argument("--options", help="options.json")
    model.add_argument("--weights", help="weights .hdf5")
    model.add_argument("--ckpt", help="Lightning checkpoint written by train.py")
    parser.add_argument(
        "--mode",
        choices=FILE_MODES,
        default="all",
        help="what to store per line (default: all layers)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per biLM call")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=512,
        help="longer lines are embedded in pieces of this size",
    )
    parser.add_argument("--vocab", help="vocabulary file: its tokens skip the character CNN")
    parser.add_argument(
        "--token-cache", help="token-embedding .hdf5 for --vocab: read if it exists, else written"
    )
    parser.add_argument(
        "--word-vectors",
        help="word2vec .txt/.bin file appended to each vector (not with --mode all)",
    )
    parser.add_argument(
        "--stateful", action="store_true", help="carry LSTM state between batches, in file order"
    )
    parser.add_argument(
        "--zero-start",
        action="store_true",
        help="start sentences from a zero LSTM state instead of the warm state; with --stateful, "
        "reproduces the original tools' vectors exactly",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """``elmo-embed`` / ``python embed.py``."""
    args = build_parser().parse_args(argv)
    with user_errors("elmo-embed"):
        check_output_file(args.output, "output")  # before the model is read
        elmo = load_elmo(args)
        n = embed_file(
            elmo,
            args.input,
            args.output,
            mode=args.mode,
            batch_size=args.batch_size,
            max_tokens=args.max_tokens,
            progress=not args.quiet,
        )
    if not args.quiet:
        print(f"wrote {n} sentences to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
