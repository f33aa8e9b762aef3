"""Models by name, URL or path: the bundled sample model served over HTTP on 127.0.0.1 and
downloaded through the one resolver (cache hit, wrong checksum, interrupted download, resume).
No test reaches the internet."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest
from omegaconf import OmegaConf

from elmo_lm.commands.embed import main as embed_main
from elmo_lm.embedding.elmo import Elmo
from elmo_lm.errors import user_errors
from elmo_lm.formats.pretrained import (
    CACHE_ENV,
    PUBLISHED,
    RemoteFile,
    cache_path,
    published_files,
    resolve,
)
from elmo_lm.model.bilm import BiLM
from elmo_lm.training.run import init_from_files
from tests.helpers import ROOT

SAMPLE = ROOT / "models" / "sample"
SENTENCES = [["the", "bank", "raised", "rates", "."], ["a", "river", "bank"]]


class _Handler(BaseHTTPRequestHandler):
    """Serves models/sample, with ``Range`` requests; ``server.cut_after`` bytes: sends the
    whole ``Content-Length`` but closes the connection after that many bytes of the body."""

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = SAMPLE / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.server.cut_after is not None:
            body, self.server.cut_after = body[: self.server.cut_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def server(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests, httpd.cut_after = [], None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _one_line(call) -> str:
    with pytest.raises(SystemExit) as exc, user_errors():
        call()
    assert isinstance(exc.value.code, str) and "\n" not in exc.value.code
    return exc.value.code


def test_a_url_pair_is_downloaded_once_and_gives_the_local_models_vectors(server, tmp_path):
    urls = (f"{server.url}/options.json", f"{server.url}/weights.hdf5")
    elmo = Elmo.from_pretrained(*urls)
    assert len(server.requests) == 2
    for url, name in zip(urls, ("options.json", "weights.hdf5"), strict=True):
        cached = cache_path(url)
        assert cached.is_relative_to(tmp_path / "cache")
        assert cached.read_bytes() == (SAMPLE / name).read_bytes()
    local = Elmo.from_files(SAMPLE / "options.json", SAMPLE / "weights.hdf5")
    for got, want in zip(elmo.embed_sentences(SENTENCES), local.embed_sentences(SENTENCES)):
        np.testing.assert_array_equal(got, want)
    # the second call is a cache hit: no request
    assert BiLM.from_pretrained(*urls).options == local.bilm.options
    assert len(server.requests) == 2


def test_a_known_hash_is_checked_and_a_wrong_one_leaves_nothing_in_the_cache(server):
    url = f"{server.url}/weights.hdf5"
    actual = hashlib.sha256((SAMPLE / "weights.hdf5").read_bytes()).hexdigest()
    wrong = "0" * 64
    options = RemoteFile(f"{server.url}/options.json")
    line = _one_line(lambda: resolve(options, RemoteFile(url, sha256=wrong)))
    assert url in line and wrong in line and actual in line and "run again" in line
    leftover = [p for p in cache_path(url).parent.iterdir() if not p.name.endswith(".lock")]
    assert leftover == []
    # the right hash passes, and is checked again on the cache hit
    _, weights = resolve(options, RemoteFile(url, size=len(weights_bytes()), sha256=actual))
    assert weights.read_bytes() == weights_bytes()
    n = len(server.requests)
    assert resolve(options, RemoteFile(url, sha256=actual))[1] == weights
    assert len(server.requests) == n


def weights_bytes() -> bytes:
    return (SAMPLE / "weights.hdf5").read_bytes()


def test_an_interrupted_download_fails_in_one_line_and_resumes(server):
    urls = (f"{server.url}/options.json", f"{server.url}/weights.hdf5")
    resolve(urls[0], urls[1])  # both cached; now the weights again, from a new address
    url = f"{server.url}/weights.hdf5?again"
    half = len(weights_bytes()) // 2
    server.cut_after = half
    line = _one_line(lambda: resolve(urls[0], url))
    assert url in line and "stopped after" in line and "run again to resume" in line
    final = cache_path(url)
    assert not final.exists()
    kept = final.with_name(final.name + ".part").stat().st_size
    assert 0 < kept <= half  # what arrived, less what the broken read held
    server.requests.clear()
    _, weights = resolve(urls[0], url)
    assert server.requests == [("/weights.hdf5?again", f"bytes={kept}-")]
    assert weights == final and final.read_bytes() == weights_bytes()
    assert not final.with_name(final.name + ".part").exists()


def test_a_wrong_size_is_removed_and_a_missing_file_is_one_line(server):
    url = f"{server.url}/options.json"
    line = _one_line(lambda: resolve(RemoteFile(url, size=10), url))
    assert "bytes arrived where 10 were expected" in line
    assert not cache_path(url).exists()
    line = _one_line(lambda: resolve(url, f"{server.url}/missing.hdf5"))
    assert "missing.hdf5: the server answered 404" in line


def test_the_download_progress_bar_is_drawn_when_asked(server, capsys):
    resolve(f"{server.url}/options.json", f"{server.url}/weights.hdf5", progress=True)
    assert "weights.hdf5" in capsys.readouterr().err
    resolve(f"{server.url}/options.json?2", f"{server.url}/weights.hdf5?2")
    assert capsys.readouterr().err == ""  # stderr is not a terminal under pytest


def test_published_names_are_allennlps_files_in_their_own_cache_directory(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert list(PUBLISHED) == ["small", "medium", "original", "original-5.5b"]
    options, weights = published_files("original-5.5b")
    base = (
        "https://s3-us-west-2.amazonaws.com/allennlp/models/elmo/2x4096_512_2048cnn_2xhighway_5.5B"
    )
    assert options.url == f"{base}/elmo_2x4096_512_2048cnn_2xhighway_5.5B_options.json"
    assert weights.url == f"{base}/elmo_2x4096_512_2048cnn_2xhighway_5.5B_weights.hdf5"
    assert cache_path(weights.url) == (
        tmp_path / "2x4096_512_2048cnn_2xhighway_5.5B" / Path(weights.url).name
    )


def test_local_directories_and_weights_files_resolve_without_downloading(tmp_path):
    pair = (SAMPLE / "options.json", SAMPLE / "weights.hdf5")
    assert resolve(SAMPLE) == pair
    assert resolve(SAMPLE / "weights.hdf5") == pair
    assert resolve(*pair) == pair
    published = tmp_path / "published"
    published.mkdir()
    (published / "elmo_x_options.json").write_text("{}")
    (published / "elmo_x_weights.hdf5").write_bytes(b"")
    (published / "vocab.txt").write_text("a\n")
    assert resolve(published) == (
        published / "elmo_x_options.json",
        published / "elmo_x_weights.hdf5",
    )
    assert "nor a published model (small, medium" in _one_line(lambda: resolve("smalll"))
    assert "a URL needs its pair" in _one_line(lambda: resolve("https://example.org/x.json"))


def test_elmo_embed_and_init_from_read_models_through_the_same_resolver(server, tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("the bank raised rates .\n")
    by_dir, by_url = tmp_path / "dir.hdf5", tmp_path / "url.hdf5"
    embed_main([f"input={text}", f"output={by_dir}", f"model={SAMPLE}", "progress=false"])
    urls = [f"options={server.url}/options.json", f"weights={server.url}/weights.hdf5"]
    embed_main([f"input={text}", f"output={by_url}", *urls, "progress=false"])
    with h5py.File(by_dir) as a, h5py.File(by_url) as b:
        np.testing.assert_array_equal(a["0"][...], b["0"][...])
    pair = [f"{server.url}/options.json", f"{server.url}/weights.hdf5"]
    assert init_from_files(OmegaConf.create({"x": pair}).x) == tuple(map(cache_path, pair))
    assert init_from_files(str(SAMPLE)) == (SAMPLE / "options.json", SAMPLE / "weights.hdf5")
    assert init_from_files(None) is None
