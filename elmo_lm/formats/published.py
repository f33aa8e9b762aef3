"""The English models AllenNLP published for the ELMo paper, by name: where their files are and
which cache directory keeps them.

Each model has an options file and a weights file at ``BASE_URL/<id>/elmo_<id>_<kind>``. For the
original model AllenNLP also published its softmax, ``elmo_<id>_softmax_weights.hdf5`` beside its
weights (bilm-tf issue 126), whose rows are the lines of the vocabulary it was trained with,
``BASE_URL/vocab-2016-09-10.txt`` (793,471 tokens with ``<S>``, ``</S>`` and ``<UNK>``; bilm-tf's
README). Their sizes and SHA-256 are not recorded (this project has not downloaded them): a
download is checked against the server's ``Content-Length`` only, and the log names the SHA-256
of what arrived.
"""

from __future__ import annotations

from dataclasses import dataclass

PUBLISHED: dict[str, str] = {
    "small": "2x1024_128_2048cnn_1xhighway",
    "medium": "2x2048_256_2048cnn_1xhighway",
    "original": "2x4096_512_2048cnn_2xhighway",
    "original-5.5b": "2x4096_512_2048cnn_2xhighway_5.5B",
}
"""The published English models by name: the id of each, as AllenNLP's file names spell it."""

BASE_URL = "https://s3-us-west-2.amazonaws.com/allennlp/models/elmo"
"""Where AllenNLP's ELMo files are; read at each call (a test serves them from 127.0.0.1)."""

WITH_SOFTMAX = ("original",)
"""The published models whose softmax was published too."""

PUBLISHED_VOCAB_FILE = "vocab-2016-09-10.txt"
"""The name of the vocabulary the published softmax's rows follow, one token a line."""


@dataclass(frozen=True)
class RemoteFile:
    """A file to download.

    Attributes:
        url: its ``http(s)`` address.
        size: its size in bytes, checked after the download; ``None``: the server's
            ``Content-Length``.
        sha256: its SHA-256 (hex), checked after the download and on every cache hit;
            ``None``: not checked.
    """

    url: str
    size: int | None = None
    sha256: str | None = None


def published_url(model_id: str, kind: str) -> str:
    """The address of a published model's file; ``kind`` is ``options.json``, ``weights.hdf5``
    or ``softmax_weights.hdf5``."""
    return f"{BASE_URL}/{model_id}/elmo_{model_id}_{kind}"


def published_files(name: str) -> tuple[RemoteFile, RemoteFile]:
    """The options and weights files of the published model ``name`` (a key of ``PUBLISHED``)."""
    model_id = PUBLISHED[name]
    return RemoteFile(published_url(model_id, "options.json")), RemoteFile(
        published_url(model_id, "weights.hdf5")
    )


def published_softmax(name: str) -> tuple[RemoteFile, RemoteFile] | None:
    """The softmax file and its vocabulary of the published model ``name``; ``None`` for a model
    whose softmax was not published (``WITH_SOFTMAX``)."""
    if name not in WITH_SOFTMAX:
        return None
    softmax = published_url(PUBLISHED[name], "softmax_weights.hdf5")
    return RemoteFile(softmax), RemoteFile(f"{BASE_URL}/{PUBLISHED_VOCAB_FILE}")


def published_directories() -> dict[str, str]:
    """Each published file's address and the model id its cache directory is named after (the
    vocabulary goes with the softmax it orders, beside it)."""
    out = {}
    for name, model_id in PUBLISHED.items():
        files = [*published_files(name), *(published_softmax(name) or ())]
        out.update({f.url: model_id for f in files})
    return out
