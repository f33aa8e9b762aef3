"""CPU-only speed code: which path a run takes (``path.py``, the one switch ``ELMO_LM_PATH``),
the C kernels (``kernels.c``, built by ``native.py`` on first use, called only through
``kernels.py``), oneDNN products (``matmul.py``), the allocator setting, and where code may read
tensor values on the host. Nothing here imports the rest of elmo_lm; callers fall back to torch
operations where a kernel says it is not usable.
"""
