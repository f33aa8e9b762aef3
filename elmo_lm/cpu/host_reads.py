"""Where code may read tensor values on the host.

Reading a value on the host (``.item()``, ``.tolist()``, a shape that follows the data, as
``unique`` or ``nonzero`` give) waits for the device to finish everything queued before it. On
the CPU that costs nothing and lets work follow the data (each distinct token through the char
CNN once, windows only as long as the batch's longest token, coalesced sparse rows); on an
accelerator it stalls the stream, so there a training step keeps fixed shapes instead and is
one stream of kernels. ``ELMO_LM_PATH=accelerator`` (``path.py``) runs that code on the CPU.
"""

from __future__ import annotations

import torch

from elmo_lm.cpu import path


def may_read_on_host(t: torch.Tensor) -> bool:
    """Whether code working on ``t`` may read its values on the host: on the CPU, except on
    the accelerator path."""
    return path.for_tensor(t) != "accelerator"
