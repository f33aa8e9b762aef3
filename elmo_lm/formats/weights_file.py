"""Reading and writing the ELMo weights file (HDF5, the original tools' dataset names).

The names are those the original's ``dump_weights`` writes for each kind of model: a word-input
model has ``embedding`` (n_tokens_vocab, P) where a character model has ``char_embed`` and the
``CNN*`` datasets (the original's inference reads the embedding from its
``embedding_weight_file``, and prepends the zero padding row itself: this file serves as one);
a forward LM alone, whose LSTM the original builds without the ``RNN_0`` scope, has
``rnn/MultiRNNCell/Cell{l}/LSTMCell/kernel``, ``bias`` and ``projection/kernel``
(``rnn/LSTMCell/...`` with one layer): ``dump_weights`` renames those only under ``RNN_{d}``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np
import torch

from elmo_lm.errors import UserError
from elmo_lm.formats.atomic import atomic_path


class WeightsFileError(UserError):
    """A weights file that cannot be loaded with its options."""


def _cell(d: int, layer: int) -> str:
    return f"RNN_{d}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"


def lstm_names(options, d: int, layer: int) -> tuple[str, str, str]:
    """The datasets of one LSTM cell, (W_0, B, W_P_0), as ``dump_weights`` names them."""
    if options.bidirectional:
        cell = _cell(d, layer)
        return f"{cell}/W_0", f"{cell}/B", f"{cell}/W_P_0"
    cell = f"rnn/MultiRNNCell/Cell{layer}/LSTMCell" if options.lstm.n_layers > 1 else "rnn/LSTMCell"
    return f"{cell}/kernel", f"{cell}/bias", f"{cell}/projection/kernel"


def expected_shapes(bilm) -> dict[str, tuple[int, ...]]:
    """Dataset name -> shape for every dataset of the model's parameters (those of
    ``weights_to_file``, the one mapping between the model and the file).

    As in the original tools, there is no ``CNN_proj`` when the filters total ``projection_dim``
    and no ``W_P_0`` when ``projection_dim == lstm.dim``; see ``identity_shapes``.
    """
    return {name: tuple(tensor.shape) for name, tensor in weights_to_file(bilm).items()}


def identity_shapes(bilm) -> dict[str, tuple[int, ...]]:
    """The projections the model leaves out (its sizes agree), name -> shape.

    Written as identity weights and zero biases: AllenNLP's reader requires ``CNN_proj`` and
    ``W_P_0``, and the original tools ignore datasets they have no variable for. On reading they
    may be absent (the original tools' files) or must hold that identity.
    """
    opts = bilm.options
    p = opts.lstm.projection_dim
    shapes = {}
    if not opts.cnn_projection and not opts.word_inputs:
        shapes["CNN_proj/W_proj"] = (p, p)
        shapes["CNN_proj/b_proj"] = (p,)
    if not opts.lstm_projection:
        for d in range(opts.n_directions):
            for layer in range(opts.lstm.n_layers):
                shapes[lstm_names(opts, d, layer)[2]] = (p, p)
    return shapes


def _identity(shape: tuple[int, ...]) -> np.ndarray:
    return np.eye(shape[0], dtype=np.float32) if len(shape) == 2 else np.zeros(shape, np.float32)


def weights_to_file(bilm) -> dict[str, torch.Tensor]:
    """Dataset name -> ``bilm``'s parameter viewed in the file's layout and shape, for every
    dataset of ``bilm``: what is written, what is read into, and the shapes a file must have."""
    out = _token_weights(bilm)
    lstm = bilm.lstm
    for layer in range(lstm.n_layers):
        for d in range(lstm.n_directions):
            w_0, b, w_p = lstm_names(bilm.options, d, layer)
            out[w_0] = lstm.weights[layer][d]
            out[b] = lstm.biases[layer][d]
            if len(lstm.projections):
                out[w_p] = lstm.projections[layer][d]
    return out


def _token_weights(bilm) -> dict[str, torch.Tensor]:
    """``weights_to_file``'s datasets of the token embedding: the words' or the char CNN's."""
    if bilm.char_cnn is None:
        return {"embedding": bilm.word_embedding.weight}
    cnn = bilm.char_cnn
    out = {"char_embed": cnn.char_embed.weight[1:]}
    char_dim = cnn.char_dim
    for i, ((width, num), w, b) in enumerate(zip(cnn.filters, cnn.conv_weights, cnn.conv_biases)):
        out[f"CNN/W_cnn_{i}"] = w.reshape(1, width, char_dim, num)
        out[f"CNN/b_cnn_{i}"] = b
    for k, hw in enumerate(cnn.highways):
        out[f"CNN_high_{k}/W_transform"], out[f"CNN_high_{k}/W_carry"] = hw.weight.split(hw.dim, 1)
        out[f"CNN_high_{k}/b_transform"], out[f"CNN_high_{k}/b_carry"] = hw.bias.split(hw.dim)
    if cnn.proj_weight is not None:
        out["CNN_proj/W_proj"] = cnn.proj_weight
        out["CNN_proj/b_proj"] = cnn.proj_bias
    return out


_EXTRA = re.compile(
    r"^(CNN/[Wb]_cnn_\d+|CNN_high_\d+/.*|RNN_\d/RNN/MultiRNNCell/Cell\d+/LSTMCell/.*"
    r"|rnn/.*LSTMCell/.*|embedding|char_embed)$"
)


def load_weights(bilm, weight_file: str | os.PathLike) -> None:
    """Copies the datasets of ``weight_file`` into ``bilm``; raises ``WeightsFileError`` on a mismatch."""
    path = Path(weight_file)
    if not path.is_file():
        raise WeightsFileError(
            f"{path}: weights file not found; pass the .hdf5 written with its options.json"
        )
    if not h5py.is_hdf5(path):
        raise WeightsFileError(
            f"{path}: not an HDF5 file; pass the weights .hdf5 (not options.json or a checkpoint)"
        )
    try:
        arrays = _read_arrays(path, expected_shapes(bilm), identity_shapes(bilm))
    except (OSError, KeyError, RuntimeError) as exc:  # h5py on a truncated or damaged file
        reason = str(exc).split("\n")[0].split(". ")[0][:160]
        raise WeightsFileError(
            f"{path}: cannot be read as HDF5, the file is truncated or damaged ({reason}); "
            "export or download it again"
        ) from None
    targets = weights_to_file(bilm)
    with torch.no_grad():
        for name, target in targets.items():
            target.copy_(torch.from_numpy(arrays[name]).reshape(target.shape))


def _read_arrays(path: Path, expected: dict, identities: dict) -> dict[str, np.ndarray]:
    """The datasets of ``expected``, checked against the names and shapes the options need."""
    arrays = {}
    with h5py.File(path, "r") as f:
        found = []
        f.visititems(
            lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None
        )
        for name in found:
            if name not in expected and name not in identities and _EXTRA.match(name):
                raise WeightsFileError(
                    f"{path}: dataset {name!r} is not part of the model its options describe; "
                    "use the options.json written with these weights"
                )
        for name, shape in expected.items():
            if name not in f:
                raise WeightsFileError(
                    f"{path}: dataset {name!r} is missing (options need shape {shape}); "
                    "use the options.json written with these weights"
                )
            data = f[name]
            if tuple(data.shape) != shape:
                raise WeightsFileError(
                    f"{path}: dataset {name!r} has shape {tuple(data.shape)} but the options need {shape}; "
                    "use the options.json written with these weights"
                )
            arrays[name] = np.asarray(data[...], dtype=np.float32)
        for name, shape in identities.items():
            if name in f and not np.array_equal(f[name][...], _identity(shape)):
                raise WeightsFileError(
                    f"{path}: dataset {name!r} is a real projection, but with these options "
                    "(filters totalling projection_dim, or lstm.dim equal to it) the model has "
                    "none; use the options.json written with these weights"
                )
    return arrays


def save_weights(bilm, weight_file: str | os.PathLike) -> None:
    """Writes every dataset of ``bilm`` (float32, no attributes), and the identity projections
    of ``identity_shapes``, atomically (``elmo_lm.formats.atomic``)."""
    with atomic_path(weight_file) as tmp, h5py.File(tmp, "w") as f:
        for name, tensor in weights_to_file(bilm).items():
            f.create_dataset(
                name, data=tensor.detach().to("cpu", torch.float32).contiguous().numpy()
            )
        for name, shape in identity_shapes(bilm).items():
            f.create_dataset(name, data=_identity(shape))
