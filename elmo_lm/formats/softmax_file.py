"""The softmax file: a biLM's output layer (shared by both directions) beside its weights.

``<weights stem>_softmax_weights.hdf5`` (``weights_softmax_weights.hdf5`` beside
``weights.hdf5``) holds ``softmax/W`` (V, P) and ``softmax/b`` (V,), float32: the layout of the
original trainer's ``dump_weights`` with its softmax kept (bilm-tf issue 126) and of the file
AllenNLP published for the original model (``elmo_<id>_softmax_weights.hdf5``), as far as is
known. Row i is the i-th token of the vocabulary beside it: ``vocab.txt``, or for the published
softmax ``vocab-2016-09-10.txt`` (``elmo_lm.formats.published``), whose specials need not come
first (``specials_first`` puts them there, rows with them).
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
from elmo_lm.formats.characters import BOS_TOKEN, EOS_TOKEN, UNK_TOKEN
from elmo_lm.formats.published import PUBLISHED_VOCAB_FILE
from elmo_lm.formats.tokenize import TOKENIZER_FILE

SOFTMAX_SUFFIX = "_softmax_weights.hdf5"
VOCAB_FILE = "vocab.txt"
"""The softmax's vocabulary beside it, one token per line, in row order."""
VOCAB_FILES = (VOCAB_FILE, PUBLISHED_VOCAB_FILE)
"""The names the softmax's vocabulary may have beside it, in the order looked for."""
SPECIALS = (BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)


class SoftmaxFileError(UserError):
    """A softmax file that is missing, damaged, or does not fit the vocabulary or the model."""


def softmax_name(weights_file: str | os.PathLike) -> str:
    """The softmax file's name for a weights file: ``<stem>_softmax_weights.hdf5``."""
    return Path(weights_file).stem + SOFTMAX_SUFFIX


def softmax_names(weights_file: str | os.PathLike) -> list[str]:
    """The names a softmax file of ``weights_file`` may have beside it: ``softmax_name``, then,
    for weights named as AllenNLP names its published files (``elmo_<id>_weights.hdf5``,
    ``published.published_url``), the name it published the original's softmax under,
    ``elmo_<id>_softmax_weights.hdf5`` (bilm-tf issue 126)."""
    names = [softmax_name(weights_file)]
    match = re.fullmatch(r"elmo_(.+)_weights\.hdf5", Path(weights_file).name)
    if match:
        names.append(f"elmo_{match[1]}{SOFTMAX_SUFFIX}")
    return names


def companion_names(weights_file: str | os.PathLike) -> list[str]:
    """The files that go with a weights file where present: tokenizer, vocabulary, softmax."""
    return [TOKENIZER_FILE, *VOCAB_FILES, *softmax_names(weights_file)]


def softmax_file_for(weights_file: str | os.PathLike) -> Path | None:
    """The softmax file beside ``weights_file`` (``softmax_names``), or ``None``."""
    weights = Path(weights_file)
    found = [weights.with_name(n) for n in softmax_names(weights)]
    return next((p for p in found if p.is_file()), None)


def vocab_file_for(softmax_file: str | os.PathLike) -> Path:
    """The vocabulary beside a softmax file, which orders its rows: ``vocab.txt``, else the
    published softmax's ``vocab-2016-09-10.txt`` (``VOCAB_FILES``).

    Raises:
        SoftmaxFileError: there is none.
    """
    found = [Path(softmax_file).with_name(n) for n in VOCAB_FILES]
    vocab = next((p for p in found if p.is_file()), None)
    if vocab is None:
        raise SoftmaxFileError(
            f"{softmax_file}: no {VOCAB_FILE} (nor {PUBLISHED_VOCAB_FILE}) beside it to say which "
            "token each row is; put the softmax's vocabulary there (one token per line, in row "
            "order)"
        )
    return vocab


def specials_first(
    tokens: list[str], weight: torch.Tensor, bias: torch.Tensor, source: object = "softmax"
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """``tokens`` with ``<S>``, ``</S>``, ``<UNK>`` moved to the front (the others in their order),
    and the rows of ``weight`` (V, P) and ``bias`` (V,) moved with them; as they are when the
    specials lead already.

    Raises:
        SoftmaxFileError: a special is missing (``source`` names the vocabulary in the message).
    """
    if tuple(tokens[: len(SPECIALS)]) == SPECIALS:
        return tokens, weight, bias
    where = {token: i for i, token in enumerate(tokens)}
    missing = [s for s in SPECIALS if s not in where]
    if missing:
        raise SoftmaxFileError(
            f"{source}: has no {', '.join(missing)}; a softmax's vocabulary needs "
            f"{', '.join(SPECIALS)} (the sentence boundaries and unknown words)"
        )
    first = [where[s] for s in SPECIALS]
    skip = set(first)
    order = first + [i for i in range(len(tokens)) if i not in skip]
    index = torch.tensor(order, dtype=torch.long)
    return [tokens[i] for i in order], weight[index], bias[index]


def save_softmax(path: str | os.PathLike, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Writes ``softmax/W`` (V, P) and ``softmax/b`` (V,; a (V, 1) bias is flattened), float32,
    atomically (``elmo_lm.formats.atomic``)."""
    w = weight.detach().to("cpu", torch.float32).contiguous().numpy()
    b = bias.detach().to("cpu", torch.float32).reshape(-1).numpy()
    if w.ndim != 2 or b.shape != (w.shape[0],):
        raise ValueError(f"softmax weight {w.shape} and bias {b.shape}: need (V, P) and (V,)")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("softmax/W", data=w)
        f.create_dataset("softmax/b", data=b)


def load_softmax(
    path: str | os.PathLike, n_classes: int, dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The softmax of a file: W (n_classes, dim) and b (n_classes,), float32.

    Raises:
        SoftmaxFileError: one line; the file is missing, not HDF5, lacks a dataset, or its
            shapes are not the vocabulary's size and the model's ``projection_dim``.
    """
    path = Path(path)
    if not path.is_file():
        raise SoftmaxFileError(f"{path}: softmax file not found; export with softmax=true")
    if not h5py.is_hdf5(path):
        raise SoftmaxFileError(f"{path}: not an HDF5 file; pass the *{SOFTMAX_SUFFIX} file")
    expected = {"softmax/W": (n_classes, dim), "softmax/b": (n_classes,)}
    arrays = {}
    try:
        with h5py.File(path, "r") as f:
            for name, shape in expected.items():
                if name not in f or not isinstance(f[name], h5py.Dataset):
                    raise SoftmaxFileError(
                        f"{path}: dataset {name!r} is missing (need shape {shape}); "
                        "pass a softmax file (softmax/W and softmax/b)"
                    )
                found = tuple(f[name].shape)
                if found != shape:
                    raise SoftmaxFileError(
                        f"{path}: dataset {name!r} has shape {found} but needs {shape} "
                        f"({n_classes} tokens of its vocabulary, projection_dim {dim}); "
                        "use the softmax file exported with these weights and vocabulary"
                    )
                arrays[name] = np.asarray(f[name][...], dtype=np.float32)
    except (OSError, KeyError, RuntimeError) as exc:  # h5py on a truncated or damaged file
        reason = str(exc).split("\n")[0][:160]
        raise SoftmaxFileError(
            f"{path}: cannot be read as HDF5 ({reason}); export or download it again"
        ) from None
    return torch.from_numpy(arrays["softmax/W"]), torch.from_numpy(arrays["softmax/b"])


def rows_by_token(
    tokens: list[str], source_tokens: list[str]
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(to, from) long row indices: row ``to[k]`` of a matrix over ``tokens`` is the token of
    row ``from[k]`` of one over ``source_tokens``, for each token found in both; None when no
    token is."""
    source = {token: i for i, token in enumerate(source_tokens)}
    pairs = [(i, source[t]) for i, t in enumerate(tokens) if t in source]
    if not pairs:
        return None
    to, frm = (torch.tensor(x, dtype=torch.long) for x in zip(*pairs))
    return to, frm


def copy_rows_by_token(
    softmax: torch.nn.Module,
    tokens: list[str],
    source_tokens: list[str],
    source_weight: torch.Tensor,
    source_bias: torch.Tensor,
) -> int:
    """Copies into ``softmax`` (``weight`` (V, P), ``bias`` (V, 1)) the row and bias of each of
    its ``tokens`` found in ``source_tokens`` (the rows of ``source_weight`` (V', P) and
    ``source_bias`` (V',)); the others keep theirs. Returns how many rows were copied."""
    matched = rows_by_token(tokens, source_tokens)
    if matched is None:
        return 0
    to, frm = matched
    weight, bias = softmax.weight, softmax.bias
    with torch.no_grad():
        weight[to.to(weight.device)] = source_weight[frm].to(weight)
        bias.view(-1)[to.to(bias.device)] = source_bias.reshape(-1)[frm].to(bias)
    return len(to)


def warm_softmax(
    softmax: torch.nn.Module, tokens: list[str], source_tokens: list[str], softmax_file: Path
) -> int:
    """``copy_rows_by_token`` from a softmax file whose rows are ``source_tokens``; returns
    the number of rows that start warm.

    Raises:
        SoftmaxFileError: the file does not fit ``source_tokens`` or ``softmax``'s dim.
    """
    weight, bias = load_softmax(softmax_file, len(source_tokens), softmax.weight.shape[1])
    return copy_rows_by_token(softmax, tokens, source_tokens, weight, bias)
