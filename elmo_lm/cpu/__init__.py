"""CPU-only speed code: the C kernels (``kernels.c``, built on first use), oneDNN products,
the allocator setting, and where code may read tensor values on the host. Nothing here imports
the rest of elmo_lm; callers fall back to torch operations where a kernel is not usable.
"""
