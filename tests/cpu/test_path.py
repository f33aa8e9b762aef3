"""The one switch of the run's path, ELMO_LM_PATH: its values, aliases, errors and use()."""

from __future__ import annotations

import pytest
import torch

from elmo_lm.cpu import kernels, matmul, native, path
from tests.cpu.calls import spy_kernels


@pytest.mark.parametrize(
    "environ, name, onednn",
    [
        ({}, "auto", True),
        ({"ELMO_LM_PATH": "auto"}, "auto", True),
        ({"ELMO_LM_PATH": "native"}, "native", True),
        ({"ELMO_LM_PATH": "torch"}, "torch", True),
        ({"ELMO_LM_PATH": "accelerator"}, "accelerator", True),
        ({"ELMO_LM_PATH": " Torch "}, "torch", True),
        ({"ELMO_LM_PATH": ""}, "auto", True),
        ({"ELMO_LM_NATIVE": "0"}, "torch", True),  # alias: the torch path
        ({"ELMO_LM_NATIVE": "1"}, "auto", True),
        ({"ELMO_LM_ONEDNN": "0"}, "auto", False),  # alias: only oneDNN off
        ({"ELMO_LM_PATH": "native", "ELMO_LM_ONEDNN": "0"}, "native", False),
        ({"ELMO_LM_PATH": "accelerator", "ELMO_LM_NATIVE": "0"}, "accelerator", True),
    ],
)
def test_the_environment_chooses(environ, name, onednn):
    assert path.from_environment(environ) == path.Choice(name, onednn)


def test_an_unknown_value_is_a_one_line_error_naming_the_switch():
    with pytest.raises(ValueError) as err:
        path.from_environment({"ELMO_LM_PATH": "gpu"})
    message = str(err.value)
    assert "\n" not in message
    assert "ELMO_LM_PATH='gpu'" in message
    assert all(name in message for name in ("auto", "native", "torch", "accelerator"))
    with pytest.raises(ValueError, match="auto, native, torch, accelerator"):
        with path.use("gpu"):
            pass


def test_use_sets_the_path_and_restores_it():
    before = path.chosen()
    with path.use("torch"):
        assert path.chosen() == path.Choice("torch")
        with path.use("accelerator"):
            assert path.chosen() == path.Choice("accelerator")
        with path.use("native", onednn=False):
            assert path.chosen() == path.Choice("native", onednn=False)
        assert path.chosen() == path.Choice("torch")
    assert path.chosen() == before
    with pytest.raises(RuntimeError), path.use("accelerator"):
        raise RuntimeError
    assert path.chosen() == before


@pytest.mark.parametrize(
    "name, on_the_cpu, host_reads_allowed, onednn",
    [
        ("auto", "native", True, True),
        ("native", "native", True, True),
        ("torch", "torch", True, False),
        ("accelerator", "accelerator", False, False),
    ],
)
def test_what_each_path_answers(name, on_the_cpu, host_reads_allowed, onednn):
    t = torch.zeros(3)
    with path.use(name):
        assert path.for_tensor(t) == on_the_cpu
        assert path.may_read_on_host(t) is host_reads_allowed
        assert path.onednn(t) is onednn
    with path.use(name, onednn=False):
        assert not path.onednn(t)
        assert path.for_tensor(t) == on_the_cpu  # oneDNN off changes nothing else


def test_an_accelerator_tensor_takes_the_accelerator_path_whatever_the_switch():
    meta = torch.zeros(3, device="meta")
    for name in path.PATHS:
        with path.use(name):
            assert path.for_tensor(meta) == "accelerator"
            assert not path.may_read_on_host(meta) and not path.onednn(meta)
            assert not kernels.usable(meta)


def test_no_c_inside_a_compiled_graph_but_onednn_stays(monkeypatch):
    t = torch.zeros(3)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    with path.use("native"):
        assert path.for_tensor(t) == "torch"
        assert not kernels.usable(t)
        assert path.onednn(t)  # oneDNN's products are torch operators: a graph holds them
        assert path.may_read_on_host(t)


@pytest.mark.parametrize("name", ["torch", "accelerator"])
def test_off_the_native_path_no_kernel_runs_and_nothing_is_built(name, monkeypatch):
    monkeypatch.setattr(native, "kernels", lambda: pytest.fail("the library was asked for"))
    ran = spy_kernels(monkeypatch)
    logits = torch.randn(4, 40)
    draws = torch.randint(0, 50, (200,))
    rows = torch.tensor([3, 1, 3])
    values = torch.randn(3, 2)
    param, sums = torch.zeros(5, 2), torch.ones(5, 2)
    with path.use(name):
        assert not kernels.usable(logits)
        assert kernels.softmax_rows_(logits) is None
        assert kernels.first_distinct(draws, 10, 50) is None
        assert kernels.coalesce_rows(rows, values, 5) is None
        assert kernels.adagrad_rows_(rows.unique(), values[:2], sums, param, 0.1, 1e-8) is False
        big = torch.randn(512, 512)
        assert not matmul.uses_onednn(big, big)
    assert not ran
    assert torch.equal(param, torch.zeros(5, 2))  # nothing done


def test_on_the_native_path_each_kernel_checks_its_tensors():
    if native.kernels() is None:
        pytest.skip("no C compiler: kernels.c cannot be built here")
    with path.use("native"):
        assert kernels.usable(torch.zeros(1))
        assert kernels.softmax_rows_(torch.randn(4, 40).double()) is None  # float32 only
        assert kernels.softmax_rows_(torch.randn(40, 4).t()) is None  # in place: contiguous
        assert kernels.first_distinct(torch.zeros(5, dtype=torch.int32), 2, 9) is None
        rows = torch.tensor([3, 1, 3])
        assert kernels.coalesce_rows(rows, torch.randn(3, 2).double(), 5) is None
        row, grad, sums = torch.tensor([1]), torch.ones(1, 2), torch.ones(5, 2)
        strided = torch.zeros(2, 5).t()  # in place: contiguous only
        assert not kernels.adagrad_rows_(row, grad, sums, strided, 0.1, 0.0)
        assert torch.equal(strided, torch.zeros(5, 2))
        param = torch.zeros(5, 2)
        assert kernels.adagrad_rows_(row, grad, sums, param, 0.1, 0.0)
        assert param[1].tolist() == pytest.approx([-0.1 / 2**0.5] * 2) and not param[0].any()
