"""Models by name, URL or path: the one resolver behind ``Elmo.from_pretrained``,
``BiLM.from_pretrained``, ``elmo-embed model=`` and ``train.py init_from=``.

A model is given as
    * a published name (``elmo_lm.formats.published``): the English models of the ELMo paper,
      downloaded from AllenNLP's address, with the original's softmax and its vocabulary where
      asked for (``resolve(..., softmax=True)``);
    * a directory holding an ``options.json`` and a weights ``.hdf5`` (what ``export.py``
      writes, or the published files side by side);
    * a weights ``.hdf5`` with its ``options.json`` beside it;
    * an options file and a weights file, each a path or an ``http(s)`` URL;
    * a Hugging Face Hub repository, ``hf://owner/name[@revision][/subdir]`` (``hub_files``).

Downloads go to ``cache_root()`` (``$ELMO_LM_CACHE``, else the platform's user cache directory,
e.g. ``~/.cache/elmo_lm``), published models under ``<id>/``, other URLs under
``urls/<hash of the URL>/``, and are made once. pooch runs them (``pooch.retrieve``, checking a
known SHA-256 on every cache hit too) through ``ResumableDownloader``, which streams with
requests into ``<name>.part`` beside the final name, asks the server for the rest with a
``Range`` header when a part is there, and checks the size (known, else the server's
``Content-Length``) and the SHA-256 (where known) before the file takes its final name. A file
lock keeps two processes (DDP ranks, say) from downloading the same file at once. Hub files
are huggingface_hub's to download and cache (``$HF_HUB_CACHE``; ``HF_HUB_OFFLINE=1``: the cache).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from elmo_lm.console import progress_bar
from elmo_lm.errors import UserError, require
from elmo_lm.formats.published import (
    PUBLISHED,
    RemoteFile,
    published_directories,
    published_files,
    published_softmax,
)
from elmo_lm.formats.softmax_file import companion_names
from elmo_lm.formats.tokenize import TOKENIZER_FILE

log = logging.getLogger(__name__)

CACHE_ENV = "ELMO_LM_CACHE"
"""The environment variable that moves the download cache."""

CHUNK = 1 << 16
"""Bytes read from the network per write: what a broken connection can lose of the part."""

TIMEOUT = 60
"""Seconds to wait for the server to connect or to send the next bytes."""

HUB = "hf://"
"""How a Hugging Face Hub repository is named: ``hf://owner/name[@revision][/subdir]``."""


class PretrainedError(UserError):
    """A model name, path or URL that cannot be found, downloaded or verified."""


def cache_root() -> Path:
    """``$ELMO_LM_CACHE``, else the platform's user cache directory for elmo_lm."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import pooch

    return Path(pooch.os_cache("elmo_lm"))


def cache_path(url: str) -> Path:
    """Where the download of ``url`` is kept: ``<id>/<name>`` for a published file,
    ``urls/<16 hex digits of the URL's SHA-256>/<name>`` for any other."""
    name = Path(urlparse(url).path).name or "download"
    published = published_directories()
    if url in published:
        return cache_root() / published[url] / name
    return cache_root() / "urls" / hashlib.sha256(url.encode()).hexdigest()[:16] / name


def is_url(text: object) -> bool:
    return isinstance(text, RemoteFile) or bool(re.match(r"https?://", str(text)))


def resolve(
    model: str | os.PathLike | RemoteFile,
    weights: str | os.PathLike | RemoteFile | None = None,
    progress: bool | None = None,
    what: str | None = None,
    softmax: bool = False,
) -> tuple[Path, Path]:
    """The local ``options.json`` and weights file of a model (module docstring), downloading
    what is not in the cache yet.

    Args:
        model: a published name, ``hf://`` Hub model, directory, weights file with
            ``options.json`` beside it, or (with ``weights``) options file; paths, URLs or
            ``RemoteFile``s.
        weights: the weights file (path, URL or ``RemoteFile``) for an options file in ``model``.
        progress: a download progress bar on stderr; ``None``: when stderr is a terminal.
        what: how the user gave the model, to start messages with (``init_from=...``); default
            the model itself.
        softmax: for a published model whose softmax was published (``original``), download it
            and its vocabulary too, beside the weights (``softmax_file.softmax_file_for`` and
            ``vocab_file_for`` find them there); a directory's or Hub model's are where they are.

    Raises:
        PretrainedError: one line naming the model and what to pass instead.
    """
    if weights is not None:
        return _file(model, progress), _file(weights, progress)
    what = what or str(model.url if isinstance(model, RemoteFile) else model)
    if str(model).startswith(HUB):
        return hub_files(str(model), what)
    if is_url(model):
        raise PretrainedError(
            f"{what}: a URL needs its pair: pass the options file's URL and the weights file's "
            "URL (Elmo.from_pretrained(options_url, weights_url), or options= and weights=)"
        )
    path = Path(model).expanduser()
    if path.is_dir():
        return _in_directory(path, what)
    if path.is_file():
        if path.suffix != ".hdf5":
            raise PretrainedError(
                f"{what}: give the weights .hdf5 (with options.json beside it), the directory "
                "holding both, or the options file and the weights file"
            )
        return path.with_name("options.json"), path
    if str(model) in PUBLISHED:
        extra = (published_softmax(str(model)) or ()) if softmax else ()
        options, weights, *_ = [fetch(f, progress) for f in (*published_files(str(model)), *extra)]
        return options, weights
    raise PretrainedError(
        f"{what}: no such file or directory, nor a published model ({', '.join(PUBLISHED)}); "
        "pass one of those names, the directory holding options.json and the weights .hdf5, "
        "or the weights .hdf5 with options.json beside it"
    )


def _file(source: str | os.PathLike | RemoteFile, progress: bool | None) -> Path:
    """A URL downloaded; a local path as it is (its reader says if it is missing)."""
    if is_url(source):
        remote = source if isinstance(source, RemoteFile) else RemoteFile(str(source))
        return fetch(remote, progress)
    return Path(source).expanduser()


def _pick(names: list[str], kind: str, suffix: str) -> str | None:
    """The options (``kind`` "options", ``suffix`` ".json") or weights file among file names:
    ``<kind><suffix>``, else the one ``*<kind>*<suffix>``, else the one ``*<suffix>``; never a
    ``*softmax*`` file nor ``tokenizer.json``."""
    found = [n for n in names if n.endswith(suffix) and "softmax" not in n and n != TOKENIZER_FILE]
    exact, named = [n for n in found if n == kind + suffix], [n for n in found if kind in n]
    candidates = exact or named or found
    return candidates[0] if len(candidates) == 1 else None


def _in_directory(directory: Path, what: str) -> tuple[Path, Path]:
    """The options and weights files of a directory (``_pick``)."""
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    options, weights = _pick(names, "options", ".json"), _pick(names, "weights", ".hdf5")
    if options is None or weights is None:
        n_json, n_hdf5 = len(list(directory.glob("*.json"))), len(list(directory.glob("*.hdf5")))
        raise PretrainedError(
            f"{what}: the directory {directory} holds {n_json} .json and {n_hdf5} .hdf5 files, "
            "not one options file and one weights file; pass the weights .hdf5 (with "
            "options.json beside it), or the options file and the weights file"
        )
    return directory / options, directory / weights


def hub_files(model: str, what: str | None = None) -> tuple[Path, Path]:
    """The options and weights files of a Hub repository, ``hf://owner/name[@revision][/subdir]``
    (those of its top or of ``subdir``, picked as in a directory), with those of
    ``softmax_file.companion_names`` where there; huggingface_hub downloads and caches them.

    Raises:
        PretrainedError: no such repository or revision, not one options and one weights file
            there (the message lists what it holds), or a file not cached in offline mode.
    """
    what = what or model
    match = re.fullmatch(r"hf://([\w.-]+/[\w.-]+)(?:@([^/\s]+))?(?:/(.*?))?/?", model)
    if match is None:
        raise PretrainedError(f"{what}: name a Hub model as hf://owner/name[@revision][/subdir]")
    repo, revision, subdir = match[1], match[2], match[3] or ""
    hub = require("huggingface_hub", "hub", f"{what} (a Hugging Face Hub model)")
    errors = require("huggingface_hub.utils", "hub", what)
    try:
        try:
            names = hub.list_repo_files(repo, revision=revision)
        except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError):
            raise
        except Exception as exc:  # offline mode, no network, the Hub down: what the cache holds
            log.info("%s: the Hub cannot be reached (%s): reading the cache", what, exc)
            folder = Path(
                hub.snapshot_download(
                    repo, revision=revision, allow_patterns=[], local_files_only=True
                )
            )
            names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
        local = sorted(n.rpartition("/")[2] for n in names if n.rpartition("/")[0] == subdir)
        options, weights = _pick(local, "options", ".json"), _pick(local, "weights", ".hdf5")
        if options is None or weights is None:
            held = ", ".join(sorted(names)[:30]) + (", ..." if len(names) > 30 else "")
            raise PretrainedError(
                f"{what}: not one options .json and one weights .hdf5 (softmax files aside) in "
                f"{subdir or 'the top'} of {repo}, which holds {held or 'no files'}; name the "
                f"folder of one model (hf://{repo}/<folder>) or upload options.json and "
                "weights.hdf5 there"
            )
        wanted = [options, weights, *(n for n in companion_names(weights) if n in local)]
        here = f"{subdir}/" if subdir else ""
        paths = [Path(hub.hf_hub_download(repo, here + n, revision=revision)) for n in wanted]
    except errors.RevisionNotFoundError:
        raise PretrainedError(f"{what}: {repo} has no revision {revision!r}") from None
    except errors.RepositoryNotFoundError:
        raise PretrainedError(
            f"{what}: no Hub repository {repo} (or it is private or gated: log in with "
            "`hf auth login` or set HF_TOKEN)"
        ) from None
    except errors.LocalEntryNotFoundError:
        raise PretrainedError(
            f"{what}: {repo} is not in the Hugging Face cache and the Hub cannot be reached; "
            "unset HF_HUB_OFFLINE (or connect) to download it once"
        ) from None
    return paths[0], paths[1]


def fetch(remote: RemoteFile, progress: bool | None = None) -> Path:
    """The cached copy of ``remote``, downloaded first if it is not in the cache (or its
    SHA-256 is known and differs).

    Raises:
        PretrainedError: the cache cannot be written, the server cannot be reached or answers
            an error, the download stops (run again: it resumes) or is not the file expected.
    """
    import pooch
    from filelock import FileLock

    path = cache_path(remote.url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PretrainedError(
            f"cannot create the download cache {path.parent} ({exc.strerror}); "
            f"set {CACHE_ENV}=<a writable directory>"
        ) from None
    with FileLock(path.with_name(f".{path.name}.lock")), _quiet(pooch.get_logger()):
        if path.is_file() and remote.size is not None and path.stat().st_size != remote.size:
            path.unlink()  # not the file expected: download it again
        downloaded = not path.is_file()
        found = pooch.retrieve(
            remote.url,
            known_hash=remote.sha256,
            fname=path.name,
            path=path.parent,
            downloader=ResumableDownloader(remote, path, progress),
        )
    if downloaded:
        log.info("downloaded %s to %s", remote.url, found)
    return Path(found)


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """pooch's own log lines (which advise ``pooch.retrieve`` arguments) held back; ours say
    what was downloaded."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class ResumableDownloader:
    """A pooch downloader (``downloader(url, output_file, pooch)``) that resumes.

    It appends to ``<final name>.part`` (kept when a download stops, so the next call asks the
    server only for the rest, with a ``Range`` header), checks the size and the SHA-256 of
    ``remote`` where known, and moves the part to ``output_file`` (pooch's temporary, renamed
    to the final name by pooch).

    Args:
        remote: the file, with its size and SHA-256 where known.
        path: its final name in the cache.
        progress: a progress bar on stderr; ``None``: when stderr is a terminal.
    """

    def __init__(self, remote: RemoteFile, path: Path, progress: bool | None = None) -> None:
        self.remote = remote
        self.part = path.with_name(path.name + ".part")
        self.progress = progress

    def __call__(self, url: str, output_file: str, pooch: object, check_only: bool = False):
        import requests

        if check_only:
            return requests.head(url, timeout=TIMEOUT, allow_redirects=True).ok
        try:
            expected = self._download(url)
        except requests.HTTPError as exc:
            response = exc.response
            raise PretrainedError(
                f"{url}: the server answered {response.status_code} {response.reason}; "
                "check the address"
            ) from None
        except requests.RequestException as exc:
            kept = self.part.stat().st_size if self.part.is_file() else 0
            if kept == 0:
                raise PretrainedError(
                    f"{url}: cannot download ({_reason(exc)}); check the address and the network"
                ) from None
            raise PretrainedError(
                f"{url}: the download stopped after {kept} bytes ({_reason(exc)}); "
                f"run again to resume it ({self.part} is kept)"
            ) from None
        self._check(url, expected)
        os.replace(self.part, output_file)

    def _download(self, url: str) -> int | None:
        """Streams what the part lacks into it; returns the size the file should have."""
        import requests

        offset = self.part.stat().st_size if self.part.is_file() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT) as response:
            if response.status_code == 416 and offset:  # the part is not a start of this file
                self.part.unlink()
                return self._download(url)
            response.raise_for_status()
            start, total = _range(response, offset)
            expected = self.remote.size if self.remote.size is not None else total
            name = Path(self.part.name).stem
            with (
                open(self.part, "r+b" if start else "wb") as f,
                progress_bar(expected, name, "B", self.progress, initial=start) as bar,
            ):
                f.seek(start)
                f.truncate()
                for chunk in response.iter_content(chunk_size=CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
        return expected

    def _check(self, url: str, expected: int | None) -> None:
        """The whole file is there and is the one expected; a wrong one is removed."""
        size = self.part.stat().st_size
        if expected is not None and size < expected:
            raise PretrainedError(
                f"{url}: the download stopped after {size} of {expected} bytes; "
                f"run again to resume it ({self.part} is kept)"
            )
        if expected is not None and size > expected:
            self.part.unlink()
            raise PretrainedError(
                f"{url}: {size} bytes arrived where {expected} were expected; removed, "
                "run again to download it anew"
            )
        if self.remote.sha256 is None:
            log.info("%s: %d bytes, SHA-256 %s", url, size, file_sha256(self.part))
            return
        actual = file_sha256(self.part)
        if actual != self.remote.sha256.lower():
            self.part.unlink()
            raise PretrainedError(
                f"{url}: SHA-256 {actual}, expected {self.remote.sha256}; the download was "
                "removed: run again, and if it fails again the file at that address is not the "
                "one expected (check the address and the hash)"
            )


def _range(response, offset: int) -> tuple[int, int | None]:
    """Where the body starts in the file and the file's size, from the response headers."""
    if response.status_code == 206:
        match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
        if match and int(match[1]) <= offset:
            total = match[2]
            return int(match[1]), None if total == "*" else int(total)
        raise PretrainedError(
            f"{response.url}: the server answered a resumed download with the range "
            f"{response.headers.get('Content-Range')!r}; remove the .part file and run again"
        )
    length = response.headers.get("Content-Length")
    return 0, int(length) if length and "Content-Encoding" not in response.headers else None


def _reason(exc: Exception) -> str:
    import requests

    if isinstance(exc, requests.ConnectTimeout | requests.ReadTimeout):
        return f"no answer in {TIMEOUT} s"
    if isinstance(exc, requests.ConnectionError) and not isinstance(
        exc, requests.exceptions.ChunkedEncodingError
    ):
        host = urlparse(exc.request.url).netloc if exc.request is not None else "the server"
        return f"cannot connect to {host}"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke"
    return type(exc).__name__


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 (hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
