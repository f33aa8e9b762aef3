"""What ``elmo-prepare`` reads: the lines of plain or compressed text files (decoded by the one
text policy of ``elmo_lm.data.text``), grouped into paragraphs for running text, and the one
sentence splitter of the project (syntok; docs/PREPARE.md says why).
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import os
import re
from collections.abc import Iterable, Iterator
from functools import cache

from tqdm import tqdm

from elmo_lm.data import text
from elmo_lm.data.corpus import corpus_files
from elmo_lm.errors import UserError

FORMATS = ("lines", "documents")
STREAMS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}  # read as streams
MAX_PARAGRAPH = 1 << 20  # characters: running text without a blank line is cut here
# Full-width sentence ends (Chinese, Japanese) that syntok does not know, with closing quotes
_CJK_END = re.compile(r"(?<=[。！？])(?![。！？”’」』）])|(?<=[。！？][”’」』）])")


class PrepareError(UserError):
    """An input or setting that ``elmo-prepare`` cannot use; the message names it."""


def input_files(inputs) -> list[str]:
    """The sorted files named by a path, a glob, or a list of them (``corpus_files``)."""
    try:
        return corpus_files(inputs)
    except UserError as exc:
        raise PrepareError(f"input {exc}") from None


def file_lines(path: str, bar: tqdm | None = None) -> Iterator[str]:
    """The decoded lines of one input, ``\\r`` and all; ``.gz``, ``.bz2`` and ``.xz`` files are
    decompressed as streams, then decoded as ``elmo_lm.data.text`` decodes a file (BOM,
    UTF-16 with its mark, NUL/binary refused, bad bytes read as U+FFFD and counted once).

    Raises:
        PrepareError: not text, or a damaged compressed file; one line naming it.
    """
    opener = STREAMS.get(os.path.splitext(path)[1].lower())
    if opener is None:
        yield from text.text_lines(path, PrepareError, bar)
        return
    try:
        with opener(path, "rb") as f:
            yield from _stream_lines(path, f, bar)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        if isinstance(exc, OSError) and exc.filename is not None:
            raise
        raise PrepareError(f"{path}: cannot be decompressed ({exc}); check the file") from None


def _stream_lines(path: str, f, bar: tqdm | None) -> Iterator[str]:
    """``text.text_lines`` on a decompressed stream (its size unknown: the bad-byte share is
    checked at its end)."""
    head = f.peek(text._HEAD)[: text._HEAD]
    reading = text._Reading(path, head, None, PrepareError)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise PrepareError(f"{path}: is UTF-32 text; re-encode it as UTF-8")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        reading.encoding = "UTF-16LE" if head.startswith(codecs.BOM_UTF16_LE) else "UTF-16BE"
        f.read(2)
        yield from text._utf16_lines(f, reading.encoding, reading, bar)
    else:
        if head.startswith(codecs.BOM_UTF8):
            f.read(3)
        yield from text._utf8_lines(f, reading, bar)
    reading.finish()


def paragraphs(lines: Iterable[str]) -> Iterator[str]:
    """Running text as paragraphs: runs of non-blank lines joined by a space, cut at blank
    lines (and every ``MAX_PARAGRAPH`` characters)."""
    run: list[str] = []
    size = 0
    for line in lines:
        line = line.strip()
        if line:
            run.append(line)
            size += len(line) + 1
            if size < MAX_PARAGRAPH:
                continue
        if run:
            yield " ".join(run)
            run, size = [], 0
    if run:
        yield " ".join(run)


def read_items(files: list[str], format: str, bar: tqdm | None = None) -> Iterator[str]:
    """The raw sentences (``lines``: each non-blank line) or paragraphs (``documents``) of
    ``files`` in order."""
    if format not in FORMATS:
        raise PrepareError(f"format={format}: use lines (a sentence per line) or documents")
    for path in files:
        lines = file_lines(path, bar)
        if format == "documents":
            yield from paragraphs(lines)
        else:
            yield from (line for line in lines if line.strip())


@cache
def _syntok():
    import syntok.segmenter  # imported here: only running text needs it

    return syntok.segmenter


def split_sentences(paragraph: str) -> list[str]:
    """The sentences of a paragraph of running text, their text as written.

    syntok finds the ends (abbreviations, initials, numbers, quotes: docs/PREPARE.md); the
    full-width ends ``。！？`` of Chinese and Japanese, which it does not know, are cut first.
    """
    segmenter = _syntok()
    out = []
    for piece in _CJK_END.split(paragraph):
        if not piece.strip():
            continue
        for para in segmenter.analyze(piece):
            for sentence in para:
                s = "".join(t.spacing + t.value for t in sentence).strip()
                if s:
                    out.append(s)
    return out
