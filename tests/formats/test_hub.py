"""``hf://owner/name[@revision][/subdir]`` models, read offline from a pre-filled Hugging Face
cache (huggingface_hub's layout: ``models--owner--name/refs/main`` naming a commit,
``snapshots/<commit>/<files>``) with ``HF_HUB_OFFLINE=1``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from elmo_lm.embedding.elmo import Elmo
from elmo_lm.formats.characters import batch_to_ids
from elmo_lm.formats.pretrained import PretrainedError, resolve
from elmo_lm.formats.tokenize import TOKENIZER_FILE, TokenizerSpec
from elmo_lm.model.bilm import BiLM
from tests.helpers import one_line_error, tiny_bilm

hub = pytest.importorskip("huggingface_hub")

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, in offline mode (read when huggingface_hub is imported, so
    its constants are set too)."""
    from huggingface_hub import constants

    root = tmp_path / "hf"
    for name, value in (("HF_HOME", root), ("HF_HUB_CACHE", root / "hub")):
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HOME", str(root))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return root / "hub"


def put(cache: Path, repo: str, files: dict[str, bytes], commit: str = COMMIT) -> Path:
    """``files`` in the cache as a download of ``repo`` at ``commit`` (``main``) leaves them."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / commit
    for name, content in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_bytes(content)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, bytes]:
    """A tiny biLM as export.py writes it (options.json, weights.hdf5, tokenizer.json)."""
    out = tmp_path_factory.mktemp("tiny")
    tiny_bilm(seed=3).to_hdf5(out / "options.json", out / "weights.hdf5")
    TokenizerSpec("moses", "en", "NFC").save(out / TOKENIZER_FILE)
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _one_line(call) -> str:
    return one_line_error(PretrainedError, call)


def test_a_hub_model_loads_from_the_cache_offline_with_its_tokenizer(cache, exported):
    snapshot = put(cache, "you/tiny", {**exported, "README.md": b"# tiny\n"})
    options, weights = resolve("hf://you/tiny")
    assert (options, weights) == (snapshot / "options.json", snapshot / "weights.hdf5")
    assert TokenizerSpec.load(options.with_name(TOKENIZER_FILE)).name == "moses"

    ids = batch_to_ids([["w1", "w2", "w3"], ["never-seen", "w9"]])
    want = tiny_bilm(seed=3)
    got = BiLM.from_pretrained("hf://you/tiny")
    with torch.no_grad():
        for a, b in zip(got(ids)["layers"], want(ids)["layers"]):
            torch.testing.assert_close(a, b)
    elmo = Elmo.from_pretrained("hf://you/tiny")
    assert elmo.embed_sentence(["w1", "w2"], mode="top").shape == (2, 16)


def test_a_revision_and_a_folder_pick_that_model(cache, exported):
    other = "fedcba9876543210fedcba9876543210fedcba98"
    put(cache, "you/many", {f"small/{k}": v for k, v in exported.items()}, commit=other)
    snapshot = put(cache, "you/many", {"elmo_x_options.json": exported["options.json"]})
    assert resolve(f"hf://you/many@{other}/small/")[0] == (
        snapshot.parent / other / "small" / "options.json"
    )
    # main has no weights at its top: the message lists what the repository holds
    message = _one_line(lambda: resolve("hf://you/many"))
    assert message == (
        "hf://you/many: not one options .json and one weights .hdf5 (softmax files aside) in "
        "the top of you/many, which holds elmo_x_options.json; name the folder of one model "
        "(hf://you/many/<folder>) or upload options.json and weights.hdf5 there"
    )


def test_softmax_files_are_not_weights_and_two_weights_are_refused(cache, exported):
    put(cache, "you/soft", {**exported, "softmax_weights.hdf5": b"x"})
    assert resolve("hf://you/soft")[1].name == "weights.hdf5"
    put(
        cache,
        "you/two",
        {
            "options.json": exported["options.json"],
            "lm_weights.hdf5": exported["weights.hdf5"],
            "old_weights.hdf5": exported["weights.hdf5"],
        },
    )
    message = _one_line(lambda: resolve("hf://you/two"))
    assert "which holds lm_weights.hdf5, old_weights.hdf5, options.json;" in message


def test_a_model_not_in_the_cache_offline_is_one_line(cache):
    message = _one_line(lambda: Elmo.from_pretrained("hf://you/absent"))
    assert message == (
        "hf://you/absent: you/absent is not in the Hugging Face cache and the Hub cannot be "
        "reached; unset HF_HUB_OFFLINE (or connect) to download it once"
    )


@pytest.mark.parametrize(
    "name", ["hf://tiny", "hf://you/tiny@", "hf://you /tiny", "hf://you/ti!ny"]
)
def test_a_malformed_hub_name_is_one_line(cache, name):
    assert _one_line(lambda: resolve(name)) == (
        f"{name}: name a Hub model as hf://owner/name[@revision][/subdir]"
    )


def test_the_hub_listing_picks_the_files_and_only_those_are_downloaded(
    cache, exported, monkeypatch
):
    """Online, the listing is the Hub's (here a stand-in), then only the picked files come."""
    snapshot = put(cache, "you/big", {f"m/{k}": v for k, v in exported.items()})
    listing = [
        "README.md",
        "m/options.json",
        "m/weights.hdf5",
        "m/softmax.hdf5",
        "m/tokenizer.json",
        "m/old/weights.hdf5",
    ]
    monkeypatch.setattr(hub, "list_repo_files", lambda repo, revision=None: listing)
    downloaded = []
    download = hub.hf_hub_download

    def record(repo, filename, **kwargs):
        downloaded.append(filename)
        return download(repo, filename, **kwargs)

    monkeypatch.setattr(hub, "hf_hub_download", record)
    assert resolve("hf://you/big/m") == (snapshot / "m/options.json", snapshot / "m/weights.hdf5")
    assert downloaded == ["m/options.json", "m/weights.hdf5", "m/tokenizer.json"]


@pytest.mark.parametrize(
    ("model", "error", "message"),
    [
        (
            "hf://you/gone",
            "RepositoryNotFoundError",
            "no Hub repository you/gone (or it is private or gated: log in with `hf auth login` "
            "or set HF_TOKEN)",
        ),
        ("hf://you/gone@v9", "RevisionNotFoundError", "you/gone has no revision 'v9'"),
    ],
)
def test_a_missing_repository_or_revision_is_one_line(cache, monkeypatch, model, error, message):
    from huggingface_hub import utils

    class Missing(getattr(utils, error)):
        def __init__(self) -> None:
            Exception.__init__(self, "404")

    def missing(repo, revision=None):
        raise Missing()

    monkeypatch.setattr(hub, "list_repo_files", missing)
    assert _one_line(lambda: resolve(model)) == f"{model}: {message}"
