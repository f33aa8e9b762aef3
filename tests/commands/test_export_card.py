"""``export.py``: the tokenizer a checkpoint records (``tokenizer.json`` beside options.json)
and the model card (``card=true``: ``README.md`` with the Hub's YAML front matter)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from elmo_lm.commands.export import export, main
from elmo_lm.formats.tokenize import TOKENIZER_FILE, TokenizerSpec
from elmo_lm.model.bilm import BiLM
from elmo_lm.training.run import train

SPEC = TokenizerSpec("moses", "de", "NFC")


@pytest.fixture(scope="module")
def trained(train_config, tmp_path_factory) -> Path:
    """The run directory of a 3-step run on a cyclic corpus (with its metrics.json)."""
    tmp_path = tmp_path_factory.mktemp("card")
    train(train_config(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=3"))
    return tmp_path / "runs" / "run"


def _run(trained: Path, tmp_path: Path, tokenizer: object = "keep", overrides=()) -> Path:
    """A copy of the trained run in ``tmp_path/run``, its checkpoint's tokenizer set (``"keep"``:
    as trained; ``"absent"``: the key removed, as in checkpoints older than the key) and its
    ``.hydra/overrides.yaml`` holding ``overrides``; returns the checkpoint."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(trained / "metrics.json", run / "metrics.json")
    checkpoint = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    if tokenizer == "absent":
        checkpoint["hyper_parameters"].pop("tokenizer", None)
    elif tokenizer != "keep":
        checkpoint["hyper_parameters"]["tokenizer"] = tokenizer
    torch.save(checkpoint, run / "checkpoints" / "last.ckpt")
    if overrides:
        (run / ".hydra").mkdir()
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    return run / "checkpoints" / "last.ckpt"


def test_the_recorded_tokenizer_is_written_beside_an_unchanged_options_json(trained, tmp_path):
    plain = export(_run(trained, tmp_path / "a", tokenizer="absent"), tmp_path / "a" / "m.hdf5")
    paths = export(_run(trained, tmp_path / "b", SPEC.to_dict()), tmp_path / "b" / "m.hdf5")
    assert "tokenizer" not in plain and not (tmp_path / "a" / TOKENIZER_FILE).exists()
    assert paths["tokenizer"] == tmp_path / "b" / TOKENIZER_FILE
    assert TokenizerSpec.load(paths["tokenizer"]) == SPEC
    # options.json keeps the original's keys only: the tokenizer is in its own file
    assert json.loads(paths["options"].read_text()) == json.loads(plain["options"].read_text())
    assert BiLM.from_pretrained(tmp_path / "b") is not None


def test_overwrite_removes_an_earlier_tokenizer_a_checkpoint_without_one_would_leave(
    trained, tmp_path
):
    ckpt = _run(trained, tmp_path, tokenizer=None)
    (tmp_path / TOKENIZER_FILE).write_text(json.dumps(SPEC.to_dict()))
    with pytest.raises(SystemExit) as exit:
        main([f"ckpt={ckpt}", f"out={tmp_path / 'weights.hdf5'}"])
    assert exit.value.code == (
        f"error: {tmp_path / TOKENIZER_FILE}: exists; pass overwrite=true to replace the export "
        "there (weights.hdf5, options.json, vocab.txt, tokenizer.json)"
    )
    paths = export(ckpt, tmp_path / "weights.hdf5", overwrite=True)
    assert set(paths) == {"weights", "options", "vocab"}
    assert not (tmp_path / TOKENIZER_FILE).exists()


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_the_card_tells_the_shape_training_corpus_perplexity_tokenizer_and_loading(
    trained, tmp_path, capsys
):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("w1 w2 w3\n")
    report = {"sentences": 1234, "tokens": 56789, "duplicates": {"removed": 7}}
    (corpus / "corpus.json").write_text(
        json.dumps({"train_files": ["train.txt"], "tokenizer": SPEC.to_dict(), "report": report})
    )
    ckpt = _run(trained, tmp_path, SPEC.to_dict(), [f"data.corpus={corpus}", "model=tiny"])
    main([f"ckpt={ckpt}", f"out={tmp_path / 'model' / 'weights.hdf5'}", "card=true"])
    assert "share it: hf upload <you>/<name> " in capsys.readouterr().out
    text = (tmp_path / "model" / "README.md").read_text()
    assert _front_matter(text) == {
        "library_name": "elmo_lm",
        "tags": ["elmo", "bilm", "feature-extraction"],
        "language": ["de"],
    }  # license is the user's to choose: a comment
    assert "# license: choose one" in text
    metrics = json.loads((trained / "metrics.json").read_text())
    for line in (
        "| biLSTM | 2 layers of 32 cells, projected to 8 |",
        "| vectors per token | 3 layers of 16 |",
        "| character CNN | 3 widths, 20 filters, relu, 1 highway |",
        "| steps | 3 |",
        "| training tokens (corpus) | 1,000 |",
        f"| prepared corpus | `{corpus}` |",
        "| sentences | 1,234 |",
        "| duplicates.removed | 7 |",
        f"| perplexity (mean of both directions) | {metrics['val/ppl']:,.2f} |",
        "`moses`, language `de`, Unicode normal form NFC (`tokenizer.json`)",
        'Elmo.from_pretrained("hf://you/name")',
        "from allennlp.modules.elmo import Elmo",
        'hf_hub_download("you/name", f) for f in ("options.json", "weights.hdf5")]',
        "| held-out tokens | 180 |",
    ):
        assert line in text, line
    n_bilm = sum(p.numel() for p in BiLM.from_pretrained(tmp_path / "model").parameters())
    assert f"| parameters (exported biLM) | {n_bilm:,} |" in text


def test_a_card_without_a_run_directory_says_what_is_not_known(trained, tmp_path):
    ckpt = tmp_path / "loose.ckpt"
    shutil.copy(trained / "checkpoints" / "last.ckpt", ckpt)
    paths = export(ckpt, tmp_path / "weights.hdf5", card=True)
    text = paths["card"].read_text()
    assert "language" not in _front_matter(text)
    assert "Not recorded (no `metrics.json` in the run directory)." in text
    assert "## Tokenizer\n\nNot recorded (a checkpoint from before tokenizers" in text
    assert "| steps | 3 |" in text and "| epoch | 1 |" in text  # the checkpoint's own record


def test_an_existing_card_is_refused_without_overwrite(tmp_path):
    (tmp_path / "README.md").write_text("my card\n")
    with pytest.raises(SystemExit) as exit:
        # refused before the checkpoint is read
        main([f"ckpt={tmp_path / 'missing.ckpt'}", f"out={tmp_path / 'w.hdf5'}", "card=true"])
    assert exit.value.code == (
        f"error: {tmp_path / 'README.md'}: exists; pass overwrite=true to replace the export "
        "there (w.hdf5, options.json, vocab.txt, README.md)"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]
    # without card=true a README.md beside the export is not the export's
    with pytest.raises(SystemExit, match="checkpoint not found"):
        main([f"ckpt={tmp_path / 'missing.ckpt'}", f"out={tmp_path / 'w.hdf5'}"])


def test_a_card_with_the_softmax_names_it_and_says_how_to_score_and_fine_tune(trained, tmp_path):
    ckpt = _run(trained, tmp_path, SPEC.to_dict())
    plain = export(ckpt, tmp_path / "plain" / "weights.hdf5", card=True)["card"].read_text()
    paths = export(ckpt, tmp_path / "lm" / "weights.hdf5", card=True, softmax=True)
    text = paths["card"].read_text()
    for line in (
        "(with the softmax vocabulary, `vocab.txt`, the tokenizer, `tokenizer.json`, and the "
        "softmax, `weights_softmax_weights.hdf5`).",
        "## As a language model",
        "The softmax is exported too: `weights_softmax_weights.hdf5` (`softmax/W` (V, P) and "
        "`softmax/b` (V,), row i the i-th token of `vocab.txt`)",
        'lm = LanguageModel.from_pretrained("hf://you/name")',
        "lm.score_sentences(",
        "lm.substitutes(",
        "`python train.py init_from=<this directory> data.train_files=...",
        "| parameters (softmax, exported) |",
    ):
        assert line in text and line not in plain, line
    assert "| parameters (softmax, training only) |" in plain
    assert "`vocab.txt`, and the tokenizer, `tokenizer.json`)." in plain
    assert paths["softmax"].name == "weights_softmax_weights.hdf5"  # the file the card names
