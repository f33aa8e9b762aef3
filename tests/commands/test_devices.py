"""``device=``: one reading for every command that takes it, one line for a device that is not
there, through the real commands."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from elmo_lm.commands import embed, evaluate
from elmo_lm.commands.args import ArgumentError
from elmo_lm.commands.devices import parse_device
from tests.helpers import ROOT

COMMANDS = {"evaluate": evaluate, "embed": embed}
CHOICES = "auto, cpu, cuda, cuda:N or mps"


def _argv(command: str, tmp_path) -> list[str]:
    """A command line whose only mistake can be its device (nothing exists, nothing is read)."""
    if command == "evaluate":
        return [f"ckpt={tmp_path / 'missing.ckpt'}", f"data={tmp_path / 'missing.txt'}"]
    return [
        f"input={tmp_path / 'missing.txt'}",
        f"output={tmp_path / 'out.hdf5'}",
        "model=small",  # never downloaded: the device is checked first
        "progress=false",
    ]


@pytest.fixture
def gpus(monkeypatch):
    """``gpus(n)``: the machine seems to have ``n`` CUDA devices and no MPS."""

    def have(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)

    return have


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    ("device", "n_gpus", "line"),
    [
        ("gpu", 0, f"device=gpu: not a device; use {CHOICES}"),
        ("gpu", 1, f"device=gpu: not a device; use {CHOICES}"),
        ("CUDA", 1, f"device=CUDA: not a device; use {CHOICES}"),
        ("cuda:-1", 1, f"device=cuda:-1: not a device; use {CHOICES}"),
        ("0", 1, f"device=0: not a device; use {CHOICES}"),
        ("meta", 0, f"device=meta: not a device these commands run on; use {CHOICES}"),
        ("cuda", 0, "device=cuda: this machine has no CUDA device; use device=cpu or device=auto"),
        (
            "cuda:0",
            0,
            "device=cuda:0: this machine has no CUDA device; use device=cpu or device=auto",
        ),
        (
            "cuda:1",
            1,
            "device=cuda:1: this machine has one CUDA device, cuda:0; use cuda:N with N < 1 or cpu",
        ),
        (
            "cuda:2",
            2,
            "device=cuda:2: this machine has 2 CUDA devices; use cuda:N with N < 2 or cpu",
        ),
        (
            "mps",
            0,
            "device=mps: this machine has no MPS (Apple GPU) device; use device=cpu or device=auto",
        ),
    ],
)
def test_a_device_that_is_not_there_is_one_line(
    command, device, n_gpus, line, gpus, tmp_path, capsys
):
    gpus(n_gpus)
    with pytest.raises(SystemExit) as exc:
        COMMANDS[command].main([*_argv(command, tmp_path), f"device={device}"])
    assert exc.value.code == f"error: {line}"
    assert capsys.readouterr() == ("", "")
    assert not (tmp_path / "out.hdf5").exists()


@pytest.mark.parametrize(
    ("name", "n_gpus", "device"),
    [
        ("auto", 0, torch.device("cpu")),
        ("auto", 1, torch.device("cuda")),
        ("cpu", 0, torch.device("cpu")),
        ("cuda", 1, torch.device("cuda")),
        ("cuda:1", 2, torch.device("cuda:1")),
        (torch.device("cpu"), 0, torch.device("cpu")),
    ],
)
def test_the_devices_a_machine_has(name, n_gpus, device, gpus):
    gpus(n_gpus)
    assert parse_device(name) == device


def test_the_key_is_named_in_the_line(gpus):
    gpus(0)
    with pytest.raises(ArgumentError, match=r"^map_location=gpu: not a device; use auto, cpu"):
        parse_device("gpu", key="map_location")


@pytest.mark.slow
def test_evaluate_py_prints_one_line_not_a_traceback(tmp_path):
    """``python evaluate.py ... device=gpu`` printed four lines of traceback before."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), *_argv("evaluate", tmp_path), "device=gpu"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"error: device=gpu: not a device; use {CHOICES}\n"
