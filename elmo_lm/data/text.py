"""What counts as text: the one reader of the text files a user gives (training and held-out
corpora, vocabulary files, ``elmo-embed``'s input, word2vec's corpus), streaming.

The policy, the same for every command:
    * UTF-8 is read as it is; a UTF-8 byte-order mark is dropped; UTF-16 with its byte-order
      mark is decoded.
    * A file holding NUL bytes, a compressed file (gzip, bzip2, xz, zstd, zip) and a file of
      which more than ``MAX_BAD_SHARE`` of the bytes are not UTF-8 are refused in one line that
      names the file, says what it looks like (UTF-16 without a byte-order mark, gzip, binary,
      another 8-bit encoding) and how to fix it.
    * A trace of bad bytes (at most ``MAX_BAD_SHARE``) is read as U+FFFD and counted: one
      warning per file names it and the count, once per process however often it is read.

The share is of the whole file (its size is known before it is read), so a file is refused as
soon as its bad bytes pass it, before its sentences can be trained on.
"""

from __future__ import annotations

import codecs
import logging
import os
import stat
from collections.abc import Iterator

from tqdm import tqdm

from elmo_lm.errors import UserError

MAX_BAD_SHARE = 0.001
"""Files of which more than this share of the bytes cannot be decoded are refused."""

_BLOCK = 1 << 20  # UTF-8 is decoded a MiB of whole lines at a time
_CHUNK = 1 << 16  # bytes decoded at a time where lines are split after decoding (UTF-16)
_HEAD = 4096  # bytes looked at to say what a file that is not text looks like

_COMPRESSED = (  # magic bytes, the format, how to decompress it
    (b"\x1f\x8b", "gzip", "gunzip -k"),
    (b"BZh", "bzip2", "bunzip2 -k"),
    (b"\xfd7zXZ\x00", "xz", "unxz -k"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
    (b"PK\x03\x04", "zip", "unzip"),
)

log = logging.getLogger(__name__)
_warned: set[tuple[str, int, int]] = set()  # (file, size, mtime) of the files warned about


class NotTextError(UserError):
    """A file that is not text (binary, compressed, or another encoding than UTF-8/UTF-16)."""


def text_lines(
    path: str | os.PathLike, error: type[UserError] = NotTextError, bar: tqdm | None = None
) -> Iterator[str]:
    """Yields the decoded lines of a text file, streaming, without their ``"\\n"`` (a ``"\\r"``
    before it stays). Lines end at ``"\\n"`` only, as ``wc -l`` counts them.

    Args:
        path: the file.
        error: the class of the error raised (the caller's: ``CorpusError``, ...).
        bar: a progress bar counting bytes, advanced as the file is read.

    Raises:
        error: the file is not text (see the module docstring); one line naming it.
    """
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        head = f.peek(_HEAD)[:_HEAD]
        reading = _Reading(path, head, info.st_size if stat.S_ISREG(info.st_mode) else None, error)
        for magic, name, command in _COMPRESSED:
            if head.startswith(magic):
                raise error(
                    f"{path}: is {name}-compressed, not text; decompress it first "
                    f"({command} {path}) and give the text file"
                )
        if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
            raise error(f"{path}: is UTF-32 text; re-encode it as UTF-8 (iconv -t UTF-8 {path})")
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            reading.encoding = "UTF-16LE" if head.startswith(codecs.BOM_UTF16_LE) else "UTF-16BE"
            f.read(2)
            yield from _utf16_lines(f, reading.encoding, reading, bar)
        else:
            if head.startswith(codecs.BOM_UTF8):
                f.read(3)
            yield from _utf8_lines(f, reading, bar)
    reading.finish()


def _utf8_lines(f, reading: _Reading, bar: tqdm | None) -> Iterator[str]:
    """Decodes whole blocks of lines: one C call per MiB, not one per line."""
    line_number = 1  # of the first line of the block
    pending: list[bytes] = []  # the start of a line that the next block continues
    while block := f.read(_BLOCK):
        reading.read += len(block)
        if bar is not None:
            bar.update(len(block))
        end = block.rfind(b"\n") + 1
        if not end:
            pending.append(block)
            continue
        data = b"".join([*pending, block[:end]]) if pending else block[:end]
        pending = [block[end:]] if end < len(block) else []
        lines = reading.decode_utf8(data, line_number).split("\n")
        lines.pop()  # what follows the last "\n": nothing
        line_number += len(lines)
        yield from lines
    last = b"".join(pending)
    if last:
        yield reading.decode_utf8(last, line_number)


def _utf16_lines(f, codec: str, reading: _Reading, bar: tqdm | None) -> Iterator[str]:
    """Lines are split after decoding: in UTF-16, the byte 0x0a is not always a newline."""
    pending = b""  # bytes of a character that the next chunk completes
    rest = ""  # the start of a line that the next chunk continues
    line_number = 1
    high = -1 if codec == "UTF-16LE" else -2  # the byte of a code unit that marks a surrogate
    while chunk := f.read(_CHUNK):
        reading.read += len(chunk)
        if bar is not None:
            bar.update(len(chunk))
        data = pending + chunk
        cut = len(data) - len(data) % 2
        if cut and 0xD8 <= data[cut + high] <= 0xDB:  # a pair's first half waits for the second
            cut -= 2
        data, pending = data[:cut], data[cut:]
        lines = (rest + reading.decode(data, codec, line_number)).split("\n")
        rest = lines.pop()
        for line in lines:
            if "\x00" in line:
                raise reading.refuse(line_number)
            yield line
            line_number += 1
    rest += reading.decode(pending, codec, line_number)  # a lone byte or half pair: bad bytes
    if "\x00" in rest:
        raise reading.refuse(line_number)
    if rest:
        yield rest


class _Reading:
    """The bad bytes of one file as it is read: refused past ``MAX_BAD_SHARE`` of its size,
    reported once at its end."""

    def __init__(self, path, head: bytes, size: int | None, error: type[UserError]):
        self.path, self.head, self.size, self.error = path, head, size, error
        self.encoding = "UTF-8"  # or the UTF-16 of a byte-order mark
        self.bad = 0
        self.first_line = 0
        self.read = 0

    def decode_utf8(self, data: bytes, line_number: int) -> str:
        """Lines of UTF-8 from ``line_number`` on, refused if they hold a NUL byte."""
        nul = data.find(b"\x00")
        if nul >= 0:
            raise self.refuse(line_number + data.count(b"\n", 0, nul))
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return self.decode(data, "utf-8", line_number, b"\n")

    def decode(self, raw: bytes, codec: str, line_number: int, newline: bytes = b"") -> str:
        """``raw`` with each undecodable sequence read as U+FFFD (as ``errors="replace"``),
        counted; refuses the file once they pass the share. ``raw`` starts on line
        ``line_number``; with ``newline``, a bad byte's line is counted exactly."""
        view = memoryview(raw)  # slices of it are not copies
        pieces, start, bad_at = [], 0, 0
        while True:
            try:
                pieces.append(str(view[start:], codec))
                break
            except UnicodeDecodeError as exc:
                bad_at = start + exc.start
                pieces += [str(view[start:bad_at], codec), "\ufffd"]
                self.bad += exc.end - exc.start
                if not self.first_line:
                    self.first_line = line_number + _count(raw, newline, bad_at)
                start += exc.end
        if self.size is not None and self.bad > MAX_BAD_SHARE * self.size:
            raise self.refuse(line_number + _count(raw, newline, bad_at))
        return "".join(pieces)

    def refuse(self, line_number: int) -> UserError:
        """The error for a file with NUL bytes (at ``line_number``) or too many bad bytes."""
        path = self.path
        utf16 = _utf16_without_mark(self.head) if self.encoding == "UTF-8" else None
        if utf16:
            return self.error(
                f"{path}: looks like {utf16} text without a byte-order mark (every other byte is "
                f"0); re-encode it as UTF-8 (iconv -f {utf16} -t UTF-8 {path})"
            )
        if not self.bad:
            return self.error(
                f"{path}: holds NUL bytes (line {line_number}): binary data, not text; "
                "give a UTF-8 text file"
            )
        bad = f"{self.bad} undecodable byte" + ("s" if self.bad > 1 else "")
        return self.error(
            f"{path}: is not {self.encoding} ({bad} by line {line_number}, more "
            f"than {MAX_BAD_SHARE:.1%} of the file); re-encode it as UTF-8"
            + (
                f" (iconv -f LATIN1 -t UTF-8 {path}, if it is Latin-1)"
                if self.encoding == "UTF-8"
                else ""
            )
        )

    def finish(self) -> None:
        """At the end of the file: refuses it (its size was not known) or reports the trace."""
        if not self.bad:
            return
        if self.bad > MAX_BAD_SHARE * max(self.read, 1):
            raise self.refuse(self.first_line)
        key = (os.path.realpath(self.path), self.read, _mtime(self.path))
        if key in _warned:
            return
        _warned.add(key)
        count = f"{self.bad} byte that is" if self.bad == 1 else f"{self.bad} bytes that are"
        with tqdm.external_write_mode():  # not through a progress bar drawn on stderr
            log.warning(
                "%s: %s not %s (first on line %d) were read as U+FFFD (%.3f%% of the file); "
                "re-encode it as UTF-8 to keep them",
                self.path,
                count,
                self.encoding,
                self.first_line,
                100 * self.bad / max(self.read, 1),
            )


def _utf16_without_mark(head: bytes) -> str | None:
    """``UTF-16LE``/``UTF-16BE`` when most characters of ``head`` have a zero byte on one side
    (text of Latin letters in UTF-16), else None."""
    n = len(head) // 2
    if n < 2:
        return None
    even, odd = head[0 : 2 * n : 2].count(0), head[1 : 2 * n : 2].count(0)
    if odd >= n / 3 and even <= n / 20:
        return "UTF-16LE"
    if even >= n / 3 and odd <= n / 20:
        return "UTF-16BE"
    return None


def _count(raw: bytes, newline: bytes, end: int) -> int:
    return raw.count(newline, 0, end) if newline else 0


def _mtime(path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0
