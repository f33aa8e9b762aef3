"""elmo_lm's side of ``scripts/original_fixtures.py check``: a fixture of the original trainer
read with elmo_lm's reader, its weights moved by noise (elmo_lm's own values), written with
elmo_lm's writer, with elmo_lm's activations on the fixture's inputs, for the original's code
to compare its own against.

    python scripts/original_fixtures.py export      # every fixture, into /tmp/elmo_fixture_exports
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import torch

from elmo_lm.formats.softmax_file import load_softmax, save_softmax
from elmo_lm.model.bilm import BiLM
from elmo_lm.model.softmax import Softmax


def export_fixture(fixture: Path, out: Path) -> None:
    """Writes ``out/options.json``, ``weights.hdf5``, ``vocab.txt``,
    ``weights_softmax_weights.hdf5`` (elmo_lm's writer) and ``ours.hdf5`` (elmo_lm's
    activations: ``top_0``, ``embedding_0`` and ``losses`` of the fixture's window, and for a
    biLM ``lm_embeddings`` of its sentences)."""
    out.mkdir(parents=True, exist_ok=True)
    bilm = BiLM.from_hdf5(
        fixture / "options.json", fixture / "dumped_weights.hdf5", warm_start=False
    )
    p, v = bilm.options.lstm.projection_dim, bilm.options.n_tokens_vocab
    weight, bias = load_softmax(fixture / "dumped_weights_softmax_weights.hdf5", v, p)
    softmax = Softmax(weight.shape[0], weight.shape[1], sampled=False).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        softmax.weight.copy_(weight)
        softmax.bias.copy_(bias.reshape(-1, 1))
        # Weights of elmo_lm's own (the original's moved by noise), so that what the original
        # reads back is what elmo_lm wrote, not its own values round-tripped.
        for param in [*bilm.parameters(), softmax.bias]:
            param.add_(torch.randn(param.shape, generator=g) * 0.05)
        if bilm.options.share_embedding_softmax:
            softmax.weight.copy_(bilm.word_embedding.weight)
        else:
            softmax.weight.add_(torch.randn(softmax.weight.shape, generator=g) * 0.05)
        if bilm.char_cnn is not None:
            bilm.char_cnn.char_embed.weight[0].zero_()  # the padding row stays zero
    # What export.py writes of a checkpoint: BiLM.to_hdf5, vocab.txt, save_softmax.
    bilm.to_hdf5(out / "options.json", out / "weights.hdf5")
    shutil.copy(fixture / "vocab.txt", out / "vocab.txt")
    save_softmax(out / "weights_softmax_weights.hdf5", softmax.weight, softmax.bias)
    with h5py.File(fixture / "activations.hdf5", "r") as f:
        window = {k: f["window"][k][...] for k in f["window"]}
    with torch.no_grad(), h5py.File(out / "ours.hdf5", "w") as f:
        if bilm.options.word_inputs:
            names = ("token_ids", "token_ids_reverse")[: bilm.options.n_directions]
            ids = tuple(torch.from_numpy(window[n]).long() for n in names)
            embedded = bilm.word_embedding(ids[0] + 1)
            fwd, bwd, _ = bilm.lm_forward(None, None, word_ids=ids)
        else:
            chars = torch.from_numpy(window["tokens_characters"]).long() + 1
            embedded = bilm.embed_tokens(chars)
            fwd, bwd, _ = bilm.lm_forward(chars, None)
        losses = [softmax(fwd, torch.from_numpy(window["next_token_id"]).long())]
        if bwd is not None:
            losses.append(softmax(bwd, torch.from_numpy(window["next_token_id_reverse"]).long()))
        f.create_dataset("top_0", data=fwd.numpy())
        f.create_dataset("embedding_0", data=embedded.numpy())
        f.create_dataset("losses", data=np.array([float(s / n) for s, n in losses]))
        if bilm.options.bidirectional:
            sentences = json.loads((fixture / "sentences.json").read_text())
            layers = bilm(bilm.batch_inputs(sentences))["layers"]
            f.create_dataset("lm_embeddings", data=torch.stack(layers, 1).numpy())
