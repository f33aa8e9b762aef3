"""Keeps freed CPU memory in the process for reuse, so that training steps do not page-fault.

A training step allocates and frees the same large buffers every step (the sampled softmax's
(tokens, negatives) logits are 21 MB at a 32 x 20 batch). glibc's malloc gives blocks above its
mmap threshold straight back to the kernel when freed and maps them afresh, zero-filled, on the
next allocation: every step then pays for thousands of page faults. With the threshold and the
trim threshold raised, freed blocks stay in the heap and the next step reuses them, which makes
a CPU training step markedly faster (``bench/bench_train.py`` and ``bench/bench_peer.py`` time
steps with it; docs/PERFORMANCE.md has the figures). Peak memory is unchanged; memory freed
after the peak stays with the process until it ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30


def keep_freed_memory(limit: int = KEEP_BYTES) -> bool:
    """Raises glibc's mmap and trim thresholds to ``limit`` bytes (Linux with glibc only).

    Returns:
        Whether the allocator took the setting (False elsewhere; nothing changes there).
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, limit)) and bool(mallopt(M_TRIM_THRESHOLD, limit))
