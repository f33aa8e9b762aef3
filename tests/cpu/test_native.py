"""Building kernels.c: cached per machine, and a clear fallback where it cannot be built."""

import logging
import shutil
import subprocess

import pytest
import torch

from elmo_lm.cpu import kernels, native, path


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """kernels() rebuilt from scratch into tmp_path, and forgotten again afterwards."""
    monkeypatch.setenv("ELMO_LM_CACHE", str(tmp_path))
    native.kernels.cache_clear()
    yield tmp_path
    native.kernels.cache_clear()


def test_builds_once_into_the_cache(fresh, monkeypatch):
    if native._compiler() is None:
        pytest.skip("no C compiler here")
    lib = native.kernels()
    assert lib is not None and hasattr(lib, "elmo_lstm_steps_forward")
    (built,) = fresh.glob("native/*/kernels.so")
    native.kernels.cache_clear()
    monkeypatch.setattr(native.subprocess, "run", lambda *a, **k: pytest.fail("rebuilt"))
    assert native.kernels() is not None
    assert list(fresh.glob("native/*/kernels.so")) == [built]


@pytest.mark.parametrize("name", ["torch", "accelerator"])
def test_not_built_off_the_native_path(fresh, name):
    with path.use(name):
        assert not kernels.usable(torch.zeros(1))
        assert kernels.softmax_rows_(torch.randn(2, 3)) is None
    assert not any(fresh.iterdir())


def test_no_compiler_is_one_warning(fresh, monkeypatch, caplog):
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    monkeypatch.delenv("CC", raising=False)
    with caplog.at_level(logging.WARNING, logger="elmo_lm.cpu.native"):
        assert native.kernels() is None
    (record,) = caplog.records
    assert "no C compiler" in record.getMessage() and "torch operations" in record.getMessage()
    assert f"{path.ENV}=torch" in record.getMessage()


def test_a_failing_build_is_one_warning(fresh, monkeypatch, caplog, tmp_path):
    broken = tmp_path / "broken-cc"
    broken.write_text("#!/bin/sh\necho 'broken-cc: cannot compile' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    with caplog.at_level(logging.WARNING, logger="elmo_lm.cpu.native"):
        assert native.kernels() is None
    (record,) = caplog.records
    assert "broken-cc: cannot compile" in record.getMessage()
    assert f"{path.ENV}=torch" in record.getMessage()
    assert not list(tmp_path.glob("native/*/kernels.so"))


def test_a_compiler_without_openmp_still_builds(fresh, monkeypatch, tmp_path, caplog):
    """Without OpenMP the kernels are built anyway; the LSTM's directions then take turns."""
    real = native._compiler()
    if real is None or shutil.which("ldd") is None:
        pytest.skip("no C compiler (or no ldd) here")
    no_openmp = tmp_path / "cc-without-openmp"
    no_openmp.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = -fopenmp ] && { echo "no OpenMP here" >&2; exit 1; }; done\n'
        f'exec {real} "$@"\n'
    )
    no_openmp.chmod(0o755)
    monkeypatch.setenv("CC", str(no_openmp))
    with caplog.at_level(logging.WARNING, logger="elmo_lm.cpu.native"):
        lib = native.kernels()
    assert lib is not None and not caplog.records
    (built,) = fresh.glob("native/*/kernels.so")
    linked = subprocess.run(["ldd", str(built)], capture_output=True, text=True).stdout
    assert "gomp" not in linked
