"""Building and loading ``kernels.c``: compiled on first use with the system's C compiler.

The library is built once per machine (per source, flags, compiler and CPU) into the user's
cache directory and loaded with ctypes; ``SIGNATURES`` gives each kernel's C argument types.
Only ``kernels.py`` calls into it, and only on the native path (``path.py``: ``ELMO_LM_PATH``).
Where there is no C compiler, or the build fails, ``kernels()`` is None after one logged line,
and everything runs on torch operations instead: the LSTM with the same results to float32
rounding (``tests/model/test_lstm.py`` checks both), the sampler with the same ids
(``tests/model/test_softmax.py``).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from elmo_lm.cpu import path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels.c")
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC"]
# The LSTM runs its two directions on two threads of torch's OpenMP pool: the library links
# libgomp, and loaded into torch's process it shares torch's copy (same soname). A compiler
# without OpenMP builds it without: the directions then run one after the other.
OPENMP = "-fopenmp"

_P, _I, _C, _F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float
SIGNATURES = {
    "elmo_lstm_steps_forward": [
        *(_P, _P, _P, _P, _I, _P, _I, _P, _P, _I, _I, _I, _I),
        *(_P, _P, _P, _P, _P, _C, _F, _C, _F, _C),
    ],
    "elmo_lstm_steps_backward": [
        *(_P, _P, _P, _I, _P, _P, _P, _P, _P, _P, _P, _P, _I, _I, _I, _I),
        *(_P, _P, _P, _C, _F, _C, _F, _C),
    ],
    "elmo_softmax_rows": [_P, _I, _I, _C],
    "elmo_first_distinct": [_P, _I, _I, _P, _P, _P],
    "elmo_coalesce_rows": [_P, _P, _I, _I, _I, _P, _P, _P],
    "elmo_adagrad_rows": [_P, _P, _I, _I, _P, _P, _F, _F, _C],
}


def cache_dir() -> Path:
    """``$ELMO_LM_CACHE`` or ``$XDG_CACHE_HOME/elmo_lm`` (``~/.cache/elmo_lm``), then ``native``."""
    root = os.environ.get("ELMO_LM_CACHE") or os.environ.get("XDG_CACHE_HOME")
    base = Path(root) if root else Path.home() / ".cache"
    return (base if os.environ.get("ELMO_LM_CACHE") else base / "elmo_lm") / "native"


def _cpu_model() -> str:
    """The CPU's model name and flags: -march=native code is only for CPUs like the builder."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    wanted = [line for line in text.splitlines() if line.startswith(("model name", "flags"))]
    return "\n".join(wanted[:2])


def _compiler() -> str | None:
    names = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    return next((shutil.which(name) for name in names if shutil.which(name)), None)


def _build(compiler: str) -> Path:
    """Compiles ``kernels.c`` into the cache (once per source, flags, compiler and CPU)."""
    key = hashlib.sha256(
        "\0".join(
            [SOURCE.read_text(), *FLAGS, OPENMP, compiler, platform.machine(), _cpu_model()]
        ).encode()
    ).hexdigest()[:16]
    target = cache_dir() / key / "kernels.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built under a temporary name and renamed: processes building at once (DDP ranks) each
    # finish a whole file, and the last rename wins.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / "kernels.so"
        for flags in ([*FLAGS, OPENMP], FLAGS):
            run = subprocess.run(
                [compiler, *flags, "-o", str(built), str(SOURCE)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if run.returncode == 0:
                break
        run.check_returncode()
        os.replace(built, target)
    return target


@cache
def kernels() -> ctypes.CDLL | None:
    """The compiled kernels, or None (with one logged line saying why) where they cannot be had."""
    compiler = _compiler()
    if compiler is None:
        log.warning(
            "elmo_lm: no C compiler (cc, gcc or clang; or $CC) found, so the LSTM steps, the "
            "softmax rows, the sampler and the sparse rows run on torch operations, slower on the "
            "CPU; install one to speed them up, or set %s=torch to say so",
            path.ENV,
        )
        return None
    try:
        lib = ctypes.CDLL(str(_build(compiler)))
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", None) or (
            f"exit status {err.returncode}" if hasattr(err, "returncode") else str(err)
        )
        log.warning(
            "elmo_lm: building %s with %s failed (%s), so the LSTM steps, the softmax rows, the "
            "sampler and the sparse rows run on torch operations; set %s=torch to skip the build",
            SOURCE.name,
            compiler,
            detail.strip().splitlines()[-1] if detail.strip() else type(err).__name__,
            path.ENV,
        )
        return None
    for name, argtypes in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, None
    lib.elmo_first_distinct.restype = lib.elmo_coalesce_rows.restype = _I
    return lib
