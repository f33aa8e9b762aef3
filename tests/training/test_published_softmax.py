"""The published original model's softmax by name: ``LanguageModel.from_pretrained("original")``
and ``init_from=original`` download it and its vocabulary (``vocab-2016-09-10.txt``, the specials
not first) beside the weights. A tiny export is served on 127.0.0.1 under the published names and
paths, so the real resolver and downloader run; no test reaches the internet."""

from __future__ import annotations

import functools
import logging
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from elmo_lm.commands.export import export
from elmo_lm.data.vocabulary import Vocabulary, VocabularyError
from elmo_lm.formats import published
from elmo_lm.formats.pretrained import CACHE_ENV, cache_path, resolve
from elmo_lm.formats.published import PUBLISHED, published_softmax
from elmo_lm.formats.softmax_file import load_softmax, save_softmax
from elmo_lm.training.run import train
from elmo_lm.training.scorer import LanguageModel, ScorerError
from tests.helpers import SCORER_VOCAB, compose_train_config, one_line_error, write_tiny_checkpoint

ORIGINAL = PUBLISHED["original"]
# The published vocabulary's specials need not be <S>, </S>, <UNK> first: here they are not.
THEIR_ORDER = ["</S>", "<S>", "<UNK>", *reversed(SCORER_VOCAB[3:])]
SENTENCES = [["w1", "w2", "w3"], ["w4", "oov", "w5"]]


class _Handler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("published") / "tiny.ckpt")


@pytest.fixture(scope="module")
def served(ckpt, tmp_path_factory) -> Path:
    """The tiny export laid out as AllenNLP's bucket: ``original`` with its softmax (rows in
    ``THEIR_ORDER``) and the vocabulary at the top, ``small`` without one."""
    export_dir = tmp_path_factory.mktemp("export")
    export(ckpt, export_dir / "weights.hdf5", softmax=True)
    root = tmp_path_factory.mktemp("bucket")
    for model_id in (ORIGINAL, PUBLISHED["small"]):
        (root / model_id).mkdir()
        for kind, name in (("options.json", "options.json"), ("weights.hdf5", "weights.hdf5")):
            shutil.copy(export_dir / name, root / model_id / f"elmo_{model_id}_{kind}")
    weight, bias = load_softmax(export_dir / "weights_softmax_weights.hdf5", 13, 8)
    rows = torch.tensor([SCORER_VOCAB.index(t) for t in THEIR_ORDER])
    save_softmax(
        root / ORIGINAL / f"elmo_{ORIGINAL}_softmax_weights.hdf5", weight[rows], bias[rows]
    )
    (root / "vocab-2016-09-10.txt").write_text("".join(f"{t}\n" for t in THEIR_ORDER))
    return root


@pytest.fixture
def bucket(served, monkeypatch, tmp_path):
    """An HTTP server of ``served`` standing in for ``published.BASE_URL``; the cache in
    ``tmp_path/cache``."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    httpd = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(served))
    )
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(published, "BASE_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_the_published_softmax_and_vocabulary_are_at_allennlps_addresses(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    softmax, vocab = published_softmax("original")
    base = "https://s3-us-west-2.amazonaws.com/allennlp/models/elmo"
    assert softmax.url == f"{base}/{ORIGINAL}/elmo_{ORIGINAL}_softmax_weights.hdf5"
    assert vocab.url == f"{base}/vocab-2016-09-10.txt"
    assert (softmax.size, softmax.sha256, vocab.size, vocab.sha256) == (None,) * 4
    # both kept beside the original's weights, where softmax_file_for looks
    assert cache_path(softmax.url) == tmp_path / ORIGINAL / f"elmo_{ORIGINAL}_softmax_weights.hdf5"
    assert cache_path(vocab.url) == tmp_path / ORIGINAL / "vocab-2016-09-10.txt"
    assert [published_softmax(n) for n in PUBLISHED if n != "original"] == [None, None, None]


def test_original_scores_with_its_published_softmax_rows_mapped_by_its_vocabulary(
    bucket, served, ckpt, tmp_path
):
    with pytest.raises(VocabularyError, match="must be line 1"):  # not a vocabulary of ours
        Vocabulary.from_file(served / "vocab-2016-09-10.txt")
    lm = LanguageModel.from_pretrained("original")
    assert sorted(bucket.requests) == sorted(
        [
            f"/{ORIGINAL}/elmo_{ORIGINAL}_options.json",
            f"/{ORIGINAL}/elmo_{ORIGINAL}_weights.hdf5",
            f"/{ORIGINAL}/elmo_{ORIGINAL}_softmax_weights.hdf5",
            "/vocab-2016-09-10.txt",
        ]
    )
    assert lm.vocab.tokens == ["<S>", "</S>", "<UNK>", *THEIR_ORDER[3:]]
    theirs = LanguageModel.from_checkpoint(ckpt)
    for start in ("zero", "warm"):
        for a, b in zip(
            lm.score_sentences(SENTENCES, start), theirs.score_sentences(SENTENCES, start)
        ):
            assert a.logprob_fwd == pytest.approx(b.logprob_fwd, abs=1e-5)
            assert a.logprob_bwd == pytest.approx(b.logprob_bwd, abs=1e-5)
    (ours,), (same,) = (m.substitutes([SENTENCES[0]], [1], k=4) for m in (lm, theirs))
    assert [w for w, _ in ours.both] == [w for w, _ in same.both]
    # the second time is a cache hit
    LanguageModel.from_pretrained("original")
    assert len(bucket.requests) == 4


def test_embedding_the_original_downloads_no_softmax(bucket, tmp_path):
    options, weights = resolve("original")
    assert len(bucket.requests) == 2 and weights.parent == tmp_path / "cache" / ORIGINAL
    assert sorted(p.name for p in weights.parent.glob("elmo_*")) == [
        f"elmo_{ORIGINAL}_options.json",
        f"elmo_{ORIGINAL}_weights.hdf5",
    ]


def test_init_from_original_starts_the_softmax_warm(bucket, tmp_path, caplog):
    cfg = compose_train_config(
        tmp_path, "init_from=original", "trainer.max_steps=1", "trainer.limit_val_batches=1"
    )
    with caplog.at_level(logging.INFO, logger="elmo_lm.training.run"):
        train(cfg)
    softmax = tmp_path / "cache" / ORIGINAL / f"elmo_{ORIGINAL}_softmax_weights.hdf5"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("softmax:")]
    assert lines == [f"softmax: 13 of 13 rows warm from {softmax}"]


def test_a_published_model_without_a_softmax_is_one_line(bucket):
    message = one_line_error(ScorerError, lambda: LanguageModel.from_pretrained("small"))
    assert message.startswith("small: AllenNLP published no softmax for this model (only for")
    assert len(bucket.requests) == 2  # its options and weights, nothing more asked for
