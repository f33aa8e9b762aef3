"""A raw-text user's path, end to end on real German text (tests/fixtures/text): prepare it
(documents through the splitter, Moses with lang=de), train on the prepared corpus, export, and
embed raw strings cut as the model was trained."""

from __future__ import annotations

import json

import pytest
import torch

from elmo_lm.commands.export import export
from elmo_lm.commands.prepare import DEFAULTS, prepare
from elmo_lm.embedding.elmo import Elmo
from elmo_lm.formats.tokenize import TokenizerSpec, make_tokenizer
from tests.helpers import ROOT, run_train_py

GERMAN = ROOT / "tests/fixtures/text/de_sprichworte.txt"


@pytest.mark.slow
def test_raw_german_documents_prepare_train_export_and_embed(tmp_path):
    args = {**DEFAULTS, "input": str(GERMAN), "out": str(tmp_path / "corpus")}
    args.update(format="documents", lang="de", valid=20, test=20, shards=2, time_steps=0)
    args.update(progress=False, workers=1)
    corpus = prepare(**args)
    german = TokenizerSpec("moses", "de", "NFC")
    assert corpus["tokenizer"] == german.to_dict()
    result = run_train_py(
        f"data.corpus={tmp_path / 'corpus'}",
        f"paths.runs_dir={tmp_path / 'runs'}",
        "name=raw",
        "model=tiny",
        "hardware=cpu",
        "data.batch_size=4",
        "data.unroll_steps=5",
        "data.num_workers=0",
        "trainer.max_steps=4",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "module.n_negative_samples=16",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs" / "raw").iterdir()
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["tokenizer"] == german.to_dict()
    out = tmp_path / "model"
    paths = export(run_dir / "checkpoints" / "last.ckpt", out / "weights.hdf5")
    assert TokenizerSpec.load(paths["tokenizer"]) == german
    assert "tokenizer" not in json.loads((out / "options.json").read_text())
    elmo = Elmo.from_pretrained(out)
    assert elmo.tokenizer == german
    text = "Wer nicht hören will, muss fühlen."
    (embedded,) = elmo.embed_texts([text])
    tokens = make_tokenizer(german)(text)
    assert embedded.tokens == tokens and tokens[-2:] == ["fühlen", "."]
    (direct,) = elmo.embed_sentences([tokens])
    torch.testing.assert_close(torch.as_tensor(embedded.vectors), torch.as_tensor(direct))
